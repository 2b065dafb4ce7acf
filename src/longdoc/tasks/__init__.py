"""Tasks: what a model is trained to do, each one module plugged into the one registry below.

    classification   a label (or labels) per document         head "classification"
    sentences        a label per sentence (HAT)               head "sentences"
    summarization    text in, summary out (encoder-decoder)   head "seq2seq"
    question-answering  the span of a context answering a question  head "spans"

A new task is a module with a `tasks.base.Task` subclass, registered here; `longdoc train --task`,
`evaluate`, `predict` and the task's own commands then find it (see docs/architecture.md).
No torch at import: the command line builds its parser from this registry.
"""

from .base import (
    ALIASES,
    TASKS,
    Stage,
    Task,
    TrainingData,
    TrainingRun,
    get_task,
    register_task,
    task_for_head,
    task_for_model,
    task_names,
)
from .classification import ClassificationTask
from .qa import QuestionAnsweringTask
from .sentences import SentencesTask
from .summarization import SummarizationTask

register_task(ClassificationTask())
register_task(SentencesTask())
register_task(SummarizationTask())
register_task(QuestionAnsweringTask())

__all__ = ["ALIASES", "TASKS", "Stage", "Task", "TrainingData", "TrainingRun", "get_task", "register_task",
           "task_for_head", "task_for_model", "task_names"]
