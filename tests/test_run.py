"""The run directory API: `load_run`, device resolution and the CLI error wrapper."""

import pytest
import torch

import astrobio
from astrobio.errors import ConfigError, DataError, RunError, cli
from astrobio.run import load_run, resolve_device


def test_resolve_device():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(ConfigError, match="device 'gpu'"):
        resolve_device("gpu")


def test_load_run_of_a_missing_directory_names_it(tmp_path):
    with pytest.raises(RunError, match="no checkpoint.pt"):
        load_run(tmp_path / "nowhere")
    assert astrobio.load_run is load_run


def test_cli_wrapper_turns_user_errors_into_one_line_and_exit_2(capsys):
    @cli
    def main(argv=None):
        if argv == ["data"]:
            raise DataError("bad value", file="a.csv", sample="b", field="c")
        if argv == ["bug"]:
            raise KeyError("a bug keeps its traceback")
        if argv == ["ctrl-c"]:
            raise KeyboardInterrupt
        return 0

    assert main([]) == 0
    assert main(["data"]) == 2
    assert capsys.readouterr().err == "error: file 'a.csv', sample 'b', field 'c': bad value\n"
    with pytest.raises(KeyError):
        main(["bug"])
    assert main(["ctrl-c"]) == 130
    assert capsys.readouterr().err == "interrupted\n"
