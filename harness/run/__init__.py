"""Recording a commit: the runner (plan, worker protocol, execution), kernel workers, GPU timing, the fixed
regression corpus, the machine fingerprint and git facts. Uses the search to judge and the store to keep."""
