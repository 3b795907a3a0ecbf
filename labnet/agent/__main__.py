from labnet.agent.main import main

main()
