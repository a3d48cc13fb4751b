"""The one rerank pipeline: features -> ranker scores -> knob policy -> heuristics -> top k.

The HTTP service (`service`) serves it one request at a time; the simulator (`simulator`) drives the very same
pipeline over batches. It sits on top of the rest of `ranker` (the feature function and the models), of
`bandits` (the knob policies) and of `heuristics` (the re-rankers); nothing in those imports it.
"""
