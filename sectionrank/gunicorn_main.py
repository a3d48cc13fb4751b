"""gunicorn's command line as `sectionrank serve` runs it: ``python -P -m sectionrank.gunicorn_main ARGS``.

gunicorn puts its working directory first on ``sys.path`` (its ``chdir`` setting, the current directory by
default, before it imports the config module and the app), and ``python -m`` puts it there too. Run from a
directory holding another package named ``service`` or ``ranker``, the workers would import that one. Here
``-P`` keeps the interpreter from adding the directory, and the application below changes into it without
adding it: the config module and the app come from the installed packages whatever the working directory
holds. Everything else is gunicorn's own ``gunicorn`` command (``gunicorn.app.wsgiapp``).
"""

from __future__ import annotations

import os

from gunicorn.app.wsgiapp import WSGIApplication


class ServeApplication(WSGIApplication):
    """gunicorn's WSGI application, without the working directory on ``sys.path``."""

    def chdir(self) -> None:
        os.chdir(self.cfg.chdir)


def main() -> None:
    ServeApplication("%(prog)s [OPTIONS] [APP_MODULE]", prog="gunicorn").run()


if __name__ == "__main__":
    main()
