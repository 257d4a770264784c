"""The out-of-the-box transport: each message becomes an .eml file in a folder, ready to open
in any mail client, so a new user's first message ends `sent` with nothing configured."""

import asyncio
import os
from pathlib import Path

from postroom.delivery.mime import OutgoingMessage, build_mime
from postroom.delivery.transports.base import PermanentError, Receipt


class EmlFileTransport:
    name = "eml"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def send(self, message: OutgoingMessage) -> Receipt:
        data = build_mime(message)
        try:
            name = await asyncio.to_thread(self._write, message.id, data)
        except OSError as error:
            raise PermanentError(f"cannot write to {self.folder}: {error.strerror}") from None
        return Receipt(250, name)

    def _write(self, message_id: str, data: bytes) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        final = self.folder / f"{message_id}.eml"
        partial = final.with_suffix(".eml.partial")
        # Written aside and renamed, so a crash never leaves half a message under a real name.
        with partial.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        partial.replace(final)
        return final.name

    async def aclose(self) -> None:
        return None
