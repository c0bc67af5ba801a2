"""rediss:// URLs: both Redis clients (kombu's and redis-py's) check the server's certificate."""
from __future__ import annotations

import os
import subprocess
import sys

#: Run apart (worker.app builds its app from the settings when imported): the connection parameters
#: kombu's Redis transport makes for the app's broker, computed without connecting.
KOMBU = """
from worker.app import app
transport = app.connection_for_write().transport
channel = transport.Channel.__new__(transport.Channel)
channel.connection = transport
params = channel._connparams()
reqs = params.get("ssl_cert_reqs")
print(params["connection_class"].__name__, getattr(reqs, "name", reqs), params.get("ssl_ca_certs"))
"""


def test_rediss_urls_check_the_certificate_in_redis_py():
    import ssl

    from worker.store.client import connect, tls_options

    assert tls_options("redis://h:6379/0") is None
    assert tls_options("rediss://h:6380/0") == {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    assert tls_options("rediss://h:6380/0", "/etc/ca.pem") == {"ssl_cert_reqs": ssl.CERT_REQUIRED,
                                                                "ssl_ca_certs": "/etc/ca.pem"}
    assert tls_options("rediss://h:6380/0", verify=False) == {"ssl_cert_reqs": ssl.CERT_NONE}
    pool = connect("rediss://h:6380/0", "/etc/ca.pem").connection_pool
    assert pool.connection_kwargs["ssl_cert_reqs"] == ssl.CERT_REQUIRED
    assert pool.connection_kwargs["ssl_ca_certs"] == "/etc/ca.pem"


def test_the_broker_connection_checks_the_certificate_in_kombu():
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKFILL_")}

    def kombu(**settings: str) -> str:
        done = subprocess.run([sys.executable, "-c", KOMBU], env={**env, **settings}, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert kombu(REDIS_URL="rediss://h:6380/0", BACKFILL_REDIS_CA_FILE="/etc/ca.pem") == \
        "SSLConnection CERT_REQUIRED /etc/ca.pem"
    assert kombu(REDIS_URL="rediss://h:6380/0", BACKFILL_REDIS_TLS_VERIFY="false") == \
        "SSLConnection CERT_NONE None"
    assert kombu(REDIS_URL="redis://h:6379/0").startswith("Connection ")
