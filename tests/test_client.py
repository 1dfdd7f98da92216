"""silo.Client (python/silo/client.py) specifics, against a real broker: an unreachable broker is
Unavailable, bad addresses are refused, raw calls and tokens. The typed API itself is tested on
both kinds of broker in test_api.py and test_worker.py; the README's example runs against a
`silo serve` in test_docs.py."""

from __future__ import annotations

import pytest
import silo
from silo.testing import ServerProcess, free_port


async def test_no_broker_is_unavailable() -> None:
    async with await silo.connect(f"127.0.0.1:{free_port()}", timeout=10) as client:
        with pytest.raises(silo.Unavailable):
            await client.get_job(id="x")


@pytest.mark.parametrize("address", ["nowhere", "", "host:99999"])
async def test_a_bad_address_is_refused(address: str) -> None:
    with pytest.raises(silo.InvalidArgument, match="address"):
        await silo.connect(address)


async def test_raw_calls_and_tokens(server: ServerProcess) -> None:
    async with await silo.connect([server.address], token="secret") as client:
        assert client.addresses == (server.address,)
        with pytest.raises(ValueError, match="no RPC named"):
            await client.call("Nope", b"")
        with pytest.raises(silo.JobNotFound):  # refined from NOT_FOUND for GetJob
            await client.call("GetJob", b"\x0a\x01x")  # GetJobRequest{id: "x"}
        job_id = await client.enqueue(queue="q")
        reply = await client.call("GetJob", silo._native.encode_request("GetJob", {"id": job_id}))
        assert silo._native.decode_reply("GetJob", reply).id == job_id


def test_a_connection_lost_while_a_call_opens_its_stream_is_unavailable_not_a_crash() -> None:
    # grpclib 0.4 raises this AttributeError when a killed node's connection is lost between
    # the channel handing it out and the call opening its stream (seen in test_cluster).
    from silo.streams import is_lost_connection

    assert is_lost_connection(AttributeError("'Connection' object has no attribute '_transport'"))
    assert is_lost_connection(ConnectionResetError())
    assert not is_lost_connection(AttributeError("'Job' object has no attribute 'status'"))
    assert not is_lost_connection(ValueError("_transport"))
