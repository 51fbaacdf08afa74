"""``./manage vision`` as people meet it: help with a description, examples
and exit codes; global options anywhere (``-v 2`` after ``process`` is its
debug log); did you mean; Ctrl-C ends quietly with 130; a taken port is one
line."""
import socket

import pytest
from django.core.management import CommandError, call_command

from tests.vision.test_processor import KEY, external, jpeg  # noqa: F401  (external: the fake document API)
from vision_pipeline import processor
from vision_pipeline.demo import DEMO_ORGANIZATION_ID
from vision_pipeline.management.commands.vision import Command


def process_args(api) -> list[str]:
    return ["process", "--dry-run", "--external-api-get-url", api.get_url, "--external-api-post-url", api.post_url,
            "--external-api-key", KEY, "--organization-id", DEMO_ORGANIZATION_ID]


def test_help_of_the_command_and_each_subcommand():
    parser = Command().create_parser("manage.py", "vision")
    top = " ".join(parser.format_help().split())
    assert "Vision analysis batches from the shell." in top
    assert "examples: ./manage vision demo-api" in top and "exit codes: 0 done" in top
    subparsers = next(a for a in parser._actions if a.dest == "action").choices
    assert set(subparsers) == {"process", "demo-api"}
    for name, subparser in subparsers.items():
        text = subparser.format_help()
        assert subparser.description, name
        assert f"examples:\n  ./manage vision {name}" in text and "exit codes:\n  0 " in text, name
    process_help = " ".join(subparsers["process"].format_help().split())
    assert "2 a configuration error" in process_help and "1 an analysis failed" in process_help


def test_a_mistyped_subcommand_gets_did_you_mean():
    with pytest.raises(CommandError, match=r"unknown subcommand 'proces'; did you mean 'process'\?") as excinfo:
        call_command("vision", "proces")
    assert excinfo.value.returncode == 2


def test_global_options_after_the_subcommand_parse():
    parser = Command().create_parser("manage.py", "vision")
    options = parser.parse_args(["demo-api", "--port", "9999", "--no-color", "-v", "0", "--skip-checks"])
    assert (options.port, options.no_color, options.verbosity, options.skip_checks) == (9999, True, 0, True)
    options = parser.parse_args(["process", "--dry-run", "--verbose"])  # the processor's own flag stays
    assert options.verbose is True and options.verbosity == 1


@pytest.mark.django_db
def test_v2_after_process_turns_the_debug_log_on(external, capsys):  # noqa: F811
    external.add_analysis(images=[("a.jpg", jpeg())], descriptions={"a.jpg": "x"})
    call_command("vision", *process_args(external))
    quiet = capsys.readouterr().err
    call_command("vision", *process_args(external), "-v", "2")
    verbose = capsys.readouterr().err
    assert " DEBUG " not in quiet and " DEBUG " in verbose
    assert "summary: Processed 1 analyses" in verbose and KEY not in verbose


@pytest.mark.django_db
def test_ctrl_c_during_process_is_interrupted_130(monkeypatch):
    def interrupted(options, stream):
        raise KeyboardInterrupt

    monkeypatch.setattr(processor, "execute", interrupted)
    with pytest.raises(CommandError) as excinfo:
        call_command("vision", "process", "--dry-run")
    assert (excinfo.value.returncode, str(excinfo.value)) == (130, "interrupted")


def test_demo_api_on_a_taken_port_is_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(CommandError, match=rf"Cannot listen on 127.0.0.1:{port} .*pass another --port"):
            call_command("vision", "demo-api", "--port", str(port))
