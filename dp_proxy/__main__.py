from dp_proxy.cli import proxy_cli

proxy_cli(prog_name="python -m dp_proxy")
