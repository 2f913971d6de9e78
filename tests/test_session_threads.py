"""A session is tied to its lock, not to the thread that opened it."""

import threading

import dictdatabase as DDB
from dictdatabase import locking


def test_write_from_another_thread_commits_under_the_sessions_lock():
    DDB.at("db").create({"n": 1})
    session, data = DDB.at("db").session()
    data["n"] = 2
    errors = []

    def write_elsewhere():
        try:
            session.write()
        except Exception as error:  # reported to the main thread
            errors.append(error)

    worker = threading.Thread(target=write_elsewhere)
    worker.start()
    worker.join(10)
    assert errors == []
    assert DDB.at("db").read() == {"n": 2}
    session.close()
    assert locking.FileLocksSnapshot(locking.WriteLock("db").need_lock).locks == []
