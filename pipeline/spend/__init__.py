"""What a run pays: the price table and cost arithmetic, the ledger of what was spent
(this attempt and the whole job), and the budgets that stop sending when it is enough."""
