"""`python -m napari_var_emitter` and the `var-emitter` command (cli.main), with Ctrl-C while the
program loads ending as one line too."""

import os
import sys


def run() -> int:
    try:
        import signal

        from .cli import main
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    status = main()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the work is over: Ctrl-C now would only garble the exit
    if status == 130:  # interrupted: what the stopped work left pending (e.g. unread TIFF pages) is not the user's
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


if __name__ == "__main__":
    raise SystemExit(run())
