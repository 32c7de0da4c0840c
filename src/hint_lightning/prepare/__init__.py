"""Raw downloads -> prepared stores: ``python -m hint_lightning.prepare ...``.

Raw layout under ``<data_dir>/raw/`` (each file as officially distributed)::

    raw/vqacp_v2/vqacp_v2_{train,test}_{questions,annotations}.json
    raw/vqa_v2/v2_OpenEnded_mscoco_{train2014,val2014}_questions.json
    raw/vqa_v2/v2_mscoco_{train2014,val2014}_annotations.json
    raw/vqahat/vqahat_train.zip  raw/vqahat/vqahat_val.zip   (or extracted folders)
    raw/features/trainval_36/trainval_resnet101_faster_rcnn_genome_36.tsv  (or adaptive 10-100 TSVs)
    raw/glove/glove.6B.300d.txt   (optional)

Prepared layout under ``<data_dir>/prepared/`` (the contract between the prepare steps and the
DataModules; every file is written to a temporary name and renamed when complete)::

    features/<name>.h5                    a FeatureStore (name: trainval_36 or trainval_adaptive)
    vqa/<dataset>/answers.json            answer vocabulary, a JSON list (dataset: vqacp_v2, vqa_v2)
    vqa/<dataset>/tokens.json             question-token vocabulary (0 <pad>, 1 <unk>)
    vqa/<dataset>/glove.npy               [V, 300] float32 initial embeddings (when GloVe is there)
    vqa/<dataset>/<split>.h5              the questions of one split (vqacp_v2: train, test;
                                          vqa_v2: train, val)
    vqa/<dataset>/<split>_importance.h5   human importance and controls of that split's questions
    vqa/<dataset>/hat_coverage.json       which HAT maps matched which split, and which matched none
    vqa/<dataset>/prepare_state.json      what each output was built from (for up-to-date skipping)
    coco/...                              the captioning stores: see hint_lightning.prepare.coco

The schema, version, writer and reader of every prepared file: :mod:`hint_lightning.stores`
(feature store: :mod:`~hint_lightning.stores.features`; split store:
:mod:`~hint_lightning.stores.vqa_questions`; importance store:
:mod:`~hint_lightning.stores.vqa_importance`). Every dataset carries XXH3-64 checksums
(``_checksums/``) that the readers verify (``docs/data_layers.md``).
"""
