import logging

from django.core.management import BaseCommand, CommandError

from acquisition.standin import FAULTS, Faults, StandinServer


class Command(BaseCommand):
    help = (
        "Serve the loopback stand-in for the SDSS cutout and frames services, a hips2fits service (/hips2fits) "
        "and a plain cutout service for URL templates (/cutout): synthetic galaxies, faults on demand."
    )

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument(
            "--fault", action="append", default=[], metavar="NAME=RATE", help=f"Inject faults: {', '.join(FAULTS)}."
        )
        parser.add_argument("--retry-after", type=float, default=1, help="Seconds in 503 answers' Retry-After.")
        parser.add_argument("--slow-s", type=float, default=30, help="Delay of 'slow' answers.")
        parser.add_argument("--pool", type=int, default=0, help="Serve N pre-rendered galaxies (benchmarks).")
        parser.add_argument("--footprint-min-dec", type=float, default=-30.0, help="Blank images below this Dec.")

    def handle(self, *args, port, host, fault, retry_after, slow_s, pool, footprint_min_dec, **options):
        rates = {}
        for spec in fault:
            name, _, rate = spec.partition("=")
            try:
                rates[name] = float(rate)
            except ValueError:
                raise CommandError(f"--fault {spec!r}: expected NAME=RATE, e.g. 503=0.1") from None
        try:
            faults = Faults(rates=rates, retry_after=retry_after, slow_s=slow_s)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        logging.basicConfig(level=logging.INFO)
        server = StandinServer((host, port), faults=faults, pool_size=pool, footprint_min_dec=footprint_min_dec)
        self.stdout.write(
            f"SDSS stand-in on {server.url}, hips2fits at {server.url}/hips2fits, cutout template at "
            f"{server.url}/cutout?ra={{ra}}&dec={{dec}}&size={{size}}&scale={{scale}}&band={{band}} "
            f"(faults: {rates or 'none'}); Ctrl-C stops it."
        )
        self.stdout.flush()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
