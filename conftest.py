# The quantsink pytest plugin is loaded here and only here.
pytest_plugins = ["harness.plugin"]
