"""The pytest plugin of Silo (entry point `pytest11`), so users test their tasks without a
server (docs/python.md#testing):

    async def test_send_email(silo_broker: silo.Broker) -> None:
        handle = await send_email.enqueue(silo_broker, to="a@b.c")
        await silo.testing.drain(silo_broker, tasks=[send_email])
        assert await handle.result(timeout=5) == {"sent": True}

Fixture `silo_broker`: a fresh embedded broker on `memory://`, closed after the test. It is
an asyncio fixture: the test needs pytest-asyncio (`asyncio_mode = "auto"`, or mark the test
`@pytest.mark.asyncio`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

__all__ = ["silo_broker"]

try:
    import pytest_asyncio
except ImportError:  # the fixture then says what is missing

    @pytest.fixture
    def silo_broker() -> None:
        """A fresh embedded broker on memory:// (needs pytest-asyncio)."""
        pytest.fail("the silo_broker fixture needs pytest-asyncio: pip install pytest-asyncio")

else:
    from silo.broker import Broker, open

    @pytest_asyncio.fixture
    async def silo_broker() -> AsyncIterator[Broker]:  # type: ignore[misc]
        """A fresh embedded broker on memory://, closed after the test."""
        broker = await open("memory://")
        try:
            yield broker
        finally:
            await broker.close()
