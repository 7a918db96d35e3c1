"""The recommended order's defaults, without torch: the service's settings read them on
every start, including the commands that never score (`because models activate`)."""

# Chosen on a validation split of MovieLens-100K's past (bench/recommendations.py): the
# weight that maximised NDCG@10 over the held-out items the user rated 4 or more.
LIKE_WEIGHT = 1.0
DEPTH = 100  # candidates by ranking logit that the rating model reranks
