"""The LLaMA architecture: paper parameter counts, HF parity both ways, building blocks."""
import pytest
import torch

from model.hf import export_hf, hf_config, import_hf, permute, unpermute
from model.llama import CONFIGS, RMSNorm, Transformer, count_parameters, get_config

PAPER = {"7B": 6_738_415_616, "13B": 13_015_864_320, "33B": 32_528_943_616, "65B": 65_285_660_672}


@pytest.mark.parametrize("name", list(PAPER))
def test_parameter_counts_match_the_paper(name):
    assert count_parameters(CONFIGS[name]) == PAPER[name]


def test_swiglu_hidden_size():
    assert CONFIGS["7B"].hidden_dim == 11008 and CONFIGS["65B"].hidden_dim == 22016
    assert CONFIGS["7B"].hidden_dim % 256 == 0


def test_rmsnorm_is_computed_in_fp32():
    norm = RMSNorm(64).to(torch.bfloat16)
    x = (torch.randn(4, 64) * 300).to(torch.bfloat16)
    ref = (x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + 1e-6)).to(torch.bfloat16)
    assert torch.equal(norm(x), ref)


def test_no_biases_untied_embeddings():
    m = Transformer(CONFIGS["micro"])
    assert not [n for n, _ in m.named_parameters() if n.endswith("bias")]
    assert m.output.weight.data_ptr() != m.tok_embeddings.weight.data_ptr()


def _hf(args, seed=0):
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    hf = LlamaForCausalLM(hf_config(args)).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.normal_(0, 0.05)
    return hf


def test_logits_match_transformers_llama():
    args = get_config("micro", vocab_size=512)
    hf = _hf(args)
    ours = import_hf(hf).eval()
    x = torch.randint(0, 512, (2, 48))
    with torch.no_grad():
        diff = (hf(x).logits - ours(x)).abs().max().item()
    assert diff < 1e-4


def test_export_import_round_trip(tmp_path):
    from transformers import LlamaForCausalLM

    args = get_config("micro", vocab_size=512)
    ours = Transformer(args).init_weights(seed=3).eval()
    export_hf(ours, tmp_path / "hf")
    hf = LlamaForCausalLM.from_pretrained(str(tmp_path / "hf")).eval()
    x = torch.randint(0, 512, (1, 40))
    with torch.no_grad():
        assert (hf(x).logits - ours(x)).abs().max().item() < 1e-4
        back = import_hf(str(tmp_path / "hf")).eval()
        assert torch.equal(back(x), ours(x))
    # without the q/k permutation the logits would differ: the permutation matters
    w = torch.randn(64, 64)
    assert torch.equal(unpermute(permute(w, 4), 4), w) and not torch.equal(permute(w, 4), w)


def test_activation_checkpointing_gives_the_same_gradients():
    args = get_config("micro", vocab_size=300)
    x = torch.randint(0, 300, (2, 32))
    grads = []
    for ckpt in (False, True, "selective"):
        m = Transformer(args, activation_checkpointing=ckpt).init_weights(seed=5).train()
        m(x[:, :-1], x[:, 1:]).backward()
        grads.append(torch.cat([p.grad.flatten() for p in m.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6) and torch.allclose(grads[0], grads[2], atol=1e-6)
    with pytest.raises(ValueError, match="selective"):
        Transformer(args, activation_checkpointing="some")


def test_selective_checkpointing_recomputes_every_second_layer():
    """What "selective" saves: the forward pass of every second layer runs again in the backward."""
    args = get_config("micro", vocab_size=300)
    x = torch.randint(0, 300, (2, 16))
    for ckpt, recomputed in ((False, 0), (True, args.n_layers), ("selective", (args.n_layers + 1) // 2)):
        m = Transformer(args, activation_checkpointing=ckpt).init_weights(seed=5).train()
        calls = []
        for layer in m.layers:
            layer.feed_forward.w1.register_forward_pre_hook(lambda mod, inp: calls.append(mod))
        loss = m(x[:, :-1], x[:, 1:])
        forward = len(calls)
        loss.backward()
        assert forward == args.n_layers and len(calls) - forward == recomputed, ckpt
