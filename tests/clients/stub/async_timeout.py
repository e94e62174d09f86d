# Stand-in for the async-timeout package, which redis-py's asyncio parts import on
# Python < 3.11.3. The tests use the synchronous client only, which never calls it.
def timeout(*args, **kwargs):
    raise NotImplementedError("async_timeout stub: the tests use redis-py's sync client")
