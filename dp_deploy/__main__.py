from dp_deploy.checks import deploy_cli

deploy_cli()
