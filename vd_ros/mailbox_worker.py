"""A thread that handles the newest item of its :class:`LatestMailbox`, one at a time.

The node runs two: the first decodes a pair and runs the model, the second post-processes and
publishes the model's outputs. So on a 2-core CPU the post-processing of frame N runs on one
core while the model runs frame N + 1 on the other. Input pairs the first stage cannot take in
time are dropped (counted as ``stale``) instead of queued; the first stage hands its result over
only once the second has taken the previous one (:meth:`MailboxWorker.hand_over`), so no model
output is thrown away.
"""

import threading

from vd_ros.latest_mailbox import LatestMailbox


class MailboxWorker:
    """Calls ``handle(item)`` in its own thread for the newest item put, until closed.

    Attributes:
        name: Thread name.
    """

    def __init__(self, name: str, handle):
        """Start the thread.

        Args:
            name: Thread name.
            handle: Called with each item taken; it must not raise (the thread would end).
        """
        self.name = name
        self._handle = handle
        self._mailbox = LatestMailbox()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, item) -> bool:
        """Hand ``item`` to the thread; return True when it replaced an unhandled item."""
        return self._mailbox.put(item)

    @property
    def pending(self) -> bool:
        """Whether an item waits for the thread."""
        return self._mailbox.pending

    def hand_over(self, item, timeout: float = 5.0) -> bool:
        """Wait until the thread has taken the previous item, then hand ``item`` to it.

        A producer that hands over this way never has its finished work dropped: it waits at
        most for the item in hand, so no queue builds up either.

        Returns:
            True when an unhandled item had to be replaced after ``timeout`` s of waiting.
        """
        self._mailbox.wait_empty(timeout)
        return self._mailbox.put(item)

    def _run(self) -> None:
        while not self._mailbox.closed:
            item = self._mailbox.take()
            if item is not None:
                self._handle(item)

    def close(self, timeout: float = 5.0) -> None:
        """Stop taking items and wait up to ``timeout`` s for the one in hand (not from itself)."""
        self._mailbox.close()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=timeout)
