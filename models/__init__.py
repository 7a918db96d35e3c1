"""Offline: read ratings, train both models, write the artifact the service loads.

    data/         tables and id maps, readers, splits, the table encoded once per run,
                  planted test data, the demo data fetch
    networks/     rating.py (Hutter et al.), ranking.py (Lake et al., 2019): modules only
    training/     rating.py, ranking.py, item_embeddings.py; pipeline.py: both -> artifact
    evaluation/   rating.py, ranking.py (metrics and protocols), *_baselines.py (peers)
    inference/    predictor.py: the one seam the service calls; scoring.py and
                  contributions.py: the batched passes beneath it
    history.py    `History` and padding: the form every stage passes histories in
    artifact.py   save and load (safetensors + JSON); imports no training code
    manifest.py   an artifact's manifest and checksums, without torch
    cli.py        because data / train / evaluate
"""
