"""`--builder` and the TLS options (analyzer/buildkit/address.py)."""

from __future__ import annotations

import pytest

from analyzer.buildkit.address import parse_target
from analyzer.errors import UsageError


def test_each_form_of_builder(tmp_path, monkeypatch):
    assert parse_target({}).kind == "buildx" and parse_target({}).where is None
    assert (parse_target({"builder": "ci"}).kind, parse_target({"builder": "ci"}).where) == ("buildx", "ci")
    assert parse_target({"builder": "unix:///run/bk.sock"}).where == "/run/bk.sock"
    tcp = parse_target({"builder": "tcp://10.0.0.5:1234"})
    assert (tcp.kind, tcp.where, tcp.tls) == ("tcp", "10.0.0.5:1234", None)
    monkeypatch.setenv("DOCKER_HOST", "unix:///tmp/d.sock")
    assert parse_target({"builder": "docker://"}).where == "/tmp/d.sock"
    monkeypatch.delenv("DOCKER_HOST")
    assert parse_target({"builder": "docker://"}).where == "/var/run/docker.sock"
    assert parse_target({"builder": "docker://unix:///x.sock"}).label == "the docker engine at unix:///x.sock"


def test_tls_files_are_checked_before_anything_is_dialled(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    tls = parse_target({"builder": "tcp://h:1", "tlscacert": str(ca), "tlsservername": "bk"}).tls
    assert tls is not None and tls.cacert == str(ca) and tls.servername == "bk" and tls.cert is None
    system_roots = parse_target({"builder": "tcp://h:1", "tlsservername": "bk"}).tls
    assert system_roots is not None and system_roots.cacert is None


@pytest.mark.parametrize(("found", "message"), [
    ({"tlscacert": "ca.pem"}, "--tlscacert goes with --builder tcp://HOST:PORT"),
    ({"builder": "unix:///s", "tlscert": "c"}, "--tlscert goes with --builder tcp://HOST:PORT"),
    ({"builder": "tcp://h:1", "tlscert": "c"}, "--tlscert and --tlskey go together"),
    ({"builder": "tcp://h:1", "tlscacert": "/nonexistent/ca.pem"}, "--tlscacert /nonexistent/ca.pem: no such file"),
    ({"builder": "tcp://"}, "--builder tcp:// needs host:port"),
    ({"builder": "docker://tcp://h:2375"}, "docker://tcp://h:2375: only a unix socket of the docker engine is "
                                           "supported (docker://unix:///path), not tcp://h:2375"),
    ({"builder": "kube-pod://x"}, "--builder kube-pod://x: give a buildx builder name, unix://, tcp:// or docker://"),
])
def test_bad_builder_options_are_one_line_usage_errors(found, message):
    with pytest.raises(UsageError) as err:
        parse_target(found)
    assert str(err.value) == message
