from mailmarketer.testing import news, people, ws  # noqa: F401 (fixtures)
