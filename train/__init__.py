"""DeepSpeed ZeRO trainer for the LLaMA model on token Parquet shards."""
