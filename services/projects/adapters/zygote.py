# The projects service's warm MLflow: one Python process per panel that
# imports MLflow, Flask, FastAPI, SQLAlchemy and uvicorn once, then forks
# a tracking server per project on request. A fork shares every page the
# imports made (copy-on-write), so a server starts in a fraction of a
# second and its own memory is what it touches, not a whole interpreter.
#
# Each child is still MLflow's own `mlflow server` command, run in process
# with the project's arguments: MLflow decides the environment, the app
# and the uvicorn options as it always does. Only its last step, starting
# `python -m uvicorn ...` as a subprocess, runs uvicorn's own command line
# in the child instead (see _run_in_process), which is the one thing this
# relies on and check_mlflow() verifies before serving any request.
#
# Protocol, one JSON object per line: the panel writes
#   {"args": [...], "env": {...}, "dir": "...", "log": "..."}
# on stdin and reads {"pid": n} or {"error": "..."} on stdout. The first
# line out is {"ready": true}. End of stdin (the panel went away) ends
# the zygote; the servers it forked run on in their own sessions and the
# next panel adopts them by pid.
import faulthandler
import gc
import json
import os
import signal
import sys
import traceback

SERVER_MODULE = "mlflow.server"


def forget_server_modules():
    """mlflow.server registers its routes under the static prefix read from
    the environment at import time, so each child must import it afresh
    after its own environment is set. Its dependencies stay loaded."""
    for name in [m for m in sys.modules if m == SERVER_MODULE or m.startswith(SERVER_MODULE + ".")]:
        del sys.modules[name]


def preload():
    import mlflow.cli  # noqa: F401  the `mlflow` command line
    import mlflow.server.fastapi_app  # noqa: F401  everything the app imports
    import mlflow.utils.process  # noqa: F401
    import uvicorn.main  # noqa: F401

    forget_server_modules()


def check_mlflow():
    """Fail loudly, at start, if MLflow no longer starts its server the way
    _run_in_process replaces: a uvicorn subprocess through
    mlflow.utils.process._exec_cmd."""
    import inspect

    import mlflow.utils.process as process

    if not callable(getattr(process, "_exec_cmd", None)):
        raise RuntimeError("mlflow.utils.process._exec_cmd is gone: this MLflow starts its server differently")
    src = inspect.getsource(sys.modules["mlflow.cli"])
    if "from mlflow.server import _run_server" not in src:
        raise RuntimeError("mlflow.cli no longer imports mlflow.server._run_server")
    forget_server_modules()


def os_threads():
    """The names of this process's OS threads, Python's and native ones."""
    names = []
    for tid in sorted(os.listdir("/proc/self/task")):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                names.append(f.read().strip())
        except OSError:
            pass  # the thread ended meanwhile
    return names


def check_single_threaded():
    """fork() copies only the calling thread: a lock another thread held at
    that moment (in malloc, a native pool, the import machinery) stays
    held in the child forever, and the server hangs or dies later, at
    whatever first needs that lock. The panel starts the zygote with the
    thread pools of numpy's BLAS and pyarrow's jemalloc switched off
    (adapters/zygote.go: zygoteEnv); this fails loudly if an import starts
    another thread anyway, instead of forking servers that may break."""
    names = os_threads()
    if len(names) > 1:
        raise RuntimeError(
            f"the warm MLflow runs {len(names)} threads after its imports ({', '.join(names)}), and forking it is unsafe: "
            "find the import that starts them, or set MLPANEL_MLFLOW_PRELOAD=false")


def _run_in_process(cmd, extra_env=None, **_kwargs):
    """Stands in for the subprocess `mlflow server` starts: the same
    uvicorn command line, run by uvicorn's own CLI in this process."""
    if list(cmd[1:3]) != ["-m", "uvicorn"]:
        raise RuntimeError(f"mlflow server ran {cmd!r}, not `python -m uvicorn ...`: this MLflow is not supported preloaded; set MLPANEL_MLFLOW_PRELOAD=false")
    os.environ.update(extra_env or {})
    # The CLI imported mlflow.server before the environment above existed.
    forget_server_modules()
    from uvicorn.main import main as uvicorn_main

    uvicorn_main.main(args=list(cmd[3:]), prog_name="uvicorn")
    sys.exit(0)


def child(req):
    """Runs in the forked child; never returns."""
    code = 1
    try:
        os.setsid()  # its own session and process group: the panel stops the group
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        log = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(devnull)
        os.close(log)
        # A crash in native code leaves its traceback in the project's log.
        faulthandler.enable()
        os.chdir(req["dir"])
        os.environ.update(req.get("env") or {})
        import mlflow.utils.process

        mlflow.utils.process._exec_cmd = _run_in_process
        from mlflow.cli import cli

        sys.argv = ["mlflow", *req["args"]]
        cli.main(args=list(req["args"]), prog_name="mlflow")
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def reply(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main():
    # Children are reaped by the kernel; the panel watches them by pid.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    preload()
    check_mlflow()
    gc.collect()
    # Objects made so far are never scanned by the collector again, so
    # children do not copy the pages it would touch.
    gc.freeze()
    check_single_threaded()
    reply({"ready": True, "pid": os.getpid()})
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            check_single_threaded()
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
        except Exception as e:  # a bad request or no memory: say so, keep serving
            reply({"error": f"{type(e).__name__}: {e}"})
            continue
        if pid == 0:
            child(req)
        reply({"pid": pid})


if __name__ == "__main__":
    main()
