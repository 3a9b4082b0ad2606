from dp_assets.cli import main

main()
