"""MailboxWorker: newest item wins, one at a time, in its own thread, closed cleanly."""

import threading

from vd_ros.mailbox_worker import MailboxWorker


def test_handles_items_in_its_thread_and_drops_the_older_unhandled_one():
    started, release, done, handled = (threading.Event(), threading.Event(),
                                       threading.Event(), [])

    def handle(item):
        handled.append((item, threading.current_thread().name))
        started.set()
        release.wait(5.0)
        if item == 3:
            done.set()

    worker = MailboxWorker('stage', handle)
    try:
        assert worker.put(1) is False
        assert started.wait(5.0)  # item 1 in hand: 2 waits and is replaced by 3
        assert worker.put(2) is False
        assert worker.put(3) is True
        release.set()
        assert done.wait(5.0)
    finally:
        worker.close()
    assert handled == [(1, 'stage'), (3, 'stage')]


def test_close_stops_the_thread_and_ignores_later_items():
    handled = []
    worker = MailboxWorker('stage', handled.append)
    worker.close()
    worker.put('late')
    assert not worker._thread.is_alive()
    assert handled == []


def test_hand_over_waits_for_the_item_in_hand_instead_of_dropping_it():
    release, handled = threading.Event(), []

    def handle(item):
        release.wait(5.0)
        handled.append(item)

    worker = MailboxWorker('stage', handle)
    try:
        worker.put(1)  # taken at once, then held until release
        assert worker.hand_over(2) is False  # 1 is taken at once: nothing to replace
        threading.Timer(0.2, release.set).start()
        assert worker.hand_over(3) is False  # waits until 2 is taken, drops nothing
    finally:
        release.set()
        worker.close()
    assert handled[:2] == [1, 2]
