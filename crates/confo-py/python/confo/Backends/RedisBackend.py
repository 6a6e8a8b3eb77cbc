"""``RedisBackend``: Redis in the seed's layout (redis_host, redis_port, ...)."""

from ._standalone import StandaloneBackend


class RedisBackend(StandaloneBackend):
    """Redis in the seed's layout (redis_host, redis_port, ...), usable on its own: ``load_credentials(credentials)`` first."""

    KIND = "redis"
