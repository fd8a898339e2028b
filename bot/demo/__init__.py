"""`workflowbot demo`: the sample dataset, its workflow file, the simulation, and the
local stand-ins of every peer (the tests reuse them)."""
