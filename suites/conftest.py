from harness.plugin import activate


def pytest_configure(config):
    # Running the suites turns the plugin on: it parses options and checks every input
    # (specs, model, corpus, prompts, policy) before collection.
    activate(config)
