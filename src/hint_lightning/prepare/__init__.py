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

Feature store (HDF5, ragged: proposals of all images concatenated)::

    image_ids [I] int64, image_w [I] int32, image_h [I] int32, num_boxes [I] int32,
    offsets [I + 1] int64 (image i owns rows offsets[i]:offsets[i + 1]),
    boxes [R, 4] float32 (x1, y1, x2, y2 in pixels), features [R, D] float32 or float16
    attrs: format_version, feature_dim, max_boxes, float16, sources (JSON: name, size, mtime
        of every TSV)

Split store (HDF5, Q questions, fixed-width arrays, no pickle)::

    question_id [Q] int64, image_id [Q] int64, tokens [Q, 14] int32,
    answer_type [Q] int8 (index into hint_lightning.data.batch.ANSWER_TYPES),
    question_type [Q] int16 (index into the JSON attr question_types),
    target_ids [Q, K] int32 and target_scores [Q, K] float32: soft training targets, padded with
        id -1 (K = 10: at most 10 distinct human answers),
    score_ids [Q, K] int32 and score_values [Q, K] float32: official accuracy of each candidate
        answer that scores above 0 (from metrics.vqa_accuracy.AnswerScorer), padded with id -1
    attrs: format_version, dataset, split, question_types (JSON), feature_store (name),
        sources (JSON: file name, size, mtime of every raw input, for up-to-date checks)

Importance store (HDF5, aligned with the split store's questions)::

    question_id [Q] int64, has_importance [Q] bool,
    human [Q, M] float32, random [Q, M] float32, one_minus [Q, M] float32 (M = the feature
    store's max_boxes; proposal order of the feature store; 0 beyond an image's num_boxes and
    for questions without importance)
    attrs: format_version, feature_store, seed (of the random control), sources
"""
