"""rediss:// URLs: both Redis clients (kombu's and redis-py's) check the server's certificate."""


def test_rediss_urls_check_the_certificate_in_kombu_and_redis_py():
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
