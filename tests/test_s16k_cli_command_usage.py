"""An argument the command does not know is refused with that command's usage (session 16, K).

`steel export --model RUN --out HF` (the other commands take `--model`; export takes `SRC OUT`) printed the root
parser's `usage: steel [-h] [--version] COMMAND ...` and `steel: error: unrecognized arguments: --model --out`:
nothing said what `steel export` takes."""

import pytest

from steel import cli


@pytest.mark.parametrize("argv, prog, extras", [
    (["export", "--model", "run", "--out", "hf"], "steel export", "--model --out"),
    (["eval", "mc", "--model", "m", "--task", "cmmlu", "--bogus"], "steel eval mc", "--bogus"),
    (["data", "inspect", "d", "--bogus", "1"], "steel data inspect", "--bogus 1"),
    (["plot", "run", "--bogus"], "steel plot", "--bogus"),
])
def test_unknown_arguments_show_the_commands_usage(capsys, argv, prog, extras):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: {prog} "), err
    assert err.rstrip("\n").splitlines()[-1] == f"{prog}: error: unrecognized arguments: {extras}"
    if prog == "steel export":
        assert "src out" in err  # what it takes instead


def test_an_unknown_argument_without_a_command_keeps_the_root_usage(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--bogus"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: steel [-h]") and err.rstrip("\n").endswith("steel: error: unrecognized arguments: --bogus")
