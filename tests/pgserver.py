"""A real PostgreSQL server for the tests, started from the system's binaries (Debian's
postgresql package: /usr/lib/postgresql/<version>/bin) in a temporary directory, on loopback.

PostgreSQL refuses to run as root: as root the server runs as the 'postgres' user (made by
Debian's package) through runuser.
"""
import glob
import os
import shutil
import socket
import subprocess
import tempfile


def binaries():
    """The directory of initdb and pg_ctl, or None."""
    found = shutil.which("initdb") or shutil.which("pg_ctl")
    if found:
        return os.path.dirname(os.path.realpath(found))
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    return dirs[-1] if dirs else None


def _runuser():
    """util-linux's runuser, also when PATH holds only a virtual environment's bin/ (CI)."""
    found = shutil.which("runuser") or next(
        (p for p in ("/usr/sbin/runuser", "/sbin/runuser") if os.path.exists(p)), None)
    if found is None:
        raise RuntimeError("runuser not found: as root, the server runs as 'postgres' through it")
    return found


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """initdb + pg_ctl start in a new temporary directory (its own: as root, pytest's temporary
    directories are closed to the server's user); url is a SQLAlchemy URL for the 'postgres'
    database. stop() stops the server and removes the directory."""

    def __init__(self):
        self.bin = binaries()
        if self.bin is None:
            raise RuntimeError("no PostgreSQL server binaries (Debian: apt-get install postgresql)")
        self.root = tempfile.mkdtemp(prefix="fastnn-pg-")
        self.dir = os.path.join(self.root, "pgdata")
        self.port = _free_port()
        self.user = "postgres" if os.geteuid() == 0 else None
        os.makedirs(self.dir)
        if self.user:
            shutil.chown(self.root, self.user)
            shutil.chown(self.dir, self.user)
        self._run("initdb", "-D", self.dir, "-A", "trust", "-U", "fastnn", "--no-sync")
        self._run("pg_ctl", "-D", self.dir, "-w", "-t", "60", "-l", os.path.join(self.dir, "log"),
                  "-o", f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off",
                  "start")
        self.url = f"postgresql+psycopg2://fastnn@127.0.0.1:{self.port}/postgres"

    def _run(self, tool, *args):
        cmd = [os.path.join(self.bin, tool), *args]
        if self.user:
            cmd = [_runuser(), "-u", self.user, "--", *cmd]
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{tool} failed ({proc.returncode}): {proc.stderr.strip()}")

    def stop(self):
        try:
            self._run("pg_ctl", "-D", self.dir, "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
