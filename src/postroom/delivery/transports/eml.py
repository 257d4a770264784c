"""The out-of-the-box transport: each message becomes an .eml file in a folder, ready to open
in any mail client, so a new user's first message ends `sent` with nothing configured."""

import asyncio
import os
from pathlib import Path

from postroom.delivery.mime import MimeStream, OutgoingMessage
from postroom.delivery.transports.base import PermanentError, Receipt


class EmlFileTransport:
    name = "eml"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def send(self, message: OutgoingMessage) -> Receipt:
        try:
            data = MimeStream(message)
        except OSError as error:
            raise PermanentError(f"cannot read an attachment: {error}") from None
        with data:
            try:
                name = await asyncio.to_thread(self._write, message.id, data)
            except OSError as error:
                raise PermanentError(f"cannot write to {self.folder}: {error.strerror}") from None
        return Receipt(250, name)

    def _write(self, message_id: str, data: MimeStream) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        final = self.folder / f"{message_id}.eml"
        partial = final.with_suffix(".eml.partial")
        # Written aside and renamed, so a crash never leaves half a message under a real name.
        with partial.open("wb") as handle:
            for chunk in data:  # attachments are read and encoded a chunk at a time
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        partial.replace(final)
        return final.name

    async def aclose(self) -> None:
        return None
