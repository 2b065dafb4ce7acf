"""Question-answering settings that training, the pipeline and the command line share (no torch here:
the command line shows them in its help before anything heavy loads)."""

# tokens: a paragraph-long answer fits (the Python FAQ's answers run up to ~150 tokens; transformers' 15 is
# for SQuAD's short phrases). The span search costs window length x this per window, still cheap.
DEFAULT_MAX_ANSWER_LENGTH = 200

# the model config's field that keeps what a model was trained with:
# {"max_length", "doc_stride", "max_answer_length", "handle_impossible_answer"}
CONFIG_FIELD = "question_answering"
