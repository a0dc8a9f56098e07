"""The command line's wiring, without running anything: every attribute a command reads from
its arguments is one its parser defines (a renamed flag would otherwise surface only as a
traceback when a user runs that command)."""
import ast
import inspect
import textwrap

import cli


def _subparsers():
    parser = cli.build_parser()
    (action,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    return action.choices


def test_every_argument_a_command_reads_is_defined():
    checked = 0
    for name, sub in _subparsers().items():
        fn = sub.get_default("fn")
        dests = {a.dest for a in sub._actions} | {"fn", "cmd"}
        source = textwrap.dedent(inspect.getsource(fn))   # a source command's is a closure
        tree = ast.parse(source)
        arg = tree.body[0].args.args[0].arg   # the Namespace parameter (``a``)
        read = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
                and isinstance(n.value, ast.Name) and n.value.id == arg}
        guarded = {k for k in read if f'getattr({arg}, "{k}"' in source}   # read only where defined
        missing = read - dests - guarded
        assert not missing, (name, missing)
        checked += 1
    assert checked >= 19


def test_every_command_parses_its_defaults():
    for name, sub in _subparsers().items():
        required = [a for a in sub._actions if a.required or (not a.option_strings and a.nargs is None)]
        if not required:
            args = cli.build_parser().parse_args([name])
            assert args.fn is sub.get_default("fn")


def test_report_of_a_missing_output_is_one_line(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("llama: error: ") and "no such output directory" in err and "Traceback" not in err
