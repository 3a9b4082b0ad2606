from dp_resources.proxy.cli import proxy_cli

proxy_cli(prog_name="python -m dp_resources.proxy")
