"""The prepared files: the schema, version, writer and reader of each (the bottom data layer).

=============================================  ==================================================
store                                          module
=============================================  ==================================================
``prepared/features/<variant>.h5``             :mod:`.features` (reader), :mod:`.feature_writer`,
                                               :mod:`.feature_batches` (padded batches)
``prepared/vqa/<ds>/<split>.h5``, vocabularies :mod:`.vqa_questions`
``prepared/vqa/<ds>/<split>_importance.h5``    :mod:`.vqa_importance`
``prepared/coco/<family>/*``                   :mod:`.captions`
``prepared/coco/importance.h5``                :mod:`.coco_importance`
``<data_dir>/easyvqa_cp/easyvqa_cp_<h>.h5``    :mod:`.easyvqa`
decoy digits (in memory)                       :mod:`.decoy_digits`
``prepare_state.json`` of a prepared folder    :mod:`.prepare_state`
=============================================  ==================================================

Every format version is in :mod:`.versions`, the paths in :mod:`.layout`, the content
checksums in :mod:`.checksum` and the one-line errors in :mod:`.errors`. ``prepare/`` writes
these stores from the raw downloads, ``data/`` reads them; this package imports neither.
"""
