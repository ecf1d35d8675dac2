"""Task-agnostic mask training (Liu et al. 2022): one mask per sparsity, trained on unlabeled text and
shared by every task."""

from spaces.method import PRUNABLE_OPTIONS, UNSTRUCTURED_RANGE, Option, PruningMethod
from trainables.pruning.tamt import INITS, OBJECTIVES, PAPER_STEPS, RECIPES, TamtSettings, check_mlm_head, make_ticket
from trainables.pruning.weights import WeightMask

_D = TamtSettings()


def _check(options: dict, model: str) -> None:
    """The TAMT settings are valid, and an ``mlm`` objective has a model with an MLM head."""
    TamtSettings.from_options(options).validate()
    if options.get("tamt_objective") == "mlm":
        check_mlm_head(model)


def _implied(options: dict) -> dict:
    """TAMT's masked set has the pooler and the word embeddings: with the paper recipe every method of the study
    prunes that set unless the flags say otherwise."""
    return {"prune_pooler": True, "prune_embeddings": True} if options.get("tamt_recipe") == "paper" else {}

METHOD = PruningMethod(
    name="tamt",
    summary="task-agnostic mask training: scores on frozen pre-trained weights, KD or MLM on unlabeled text",
    units="weights of the prunable matrices (each matrix at the target sparsity)",
    build=make_ticket,
    mask_type=WeightMask,
    sparsity=UNSTRUCTURED_RANGE,
    options=(
        Option("tamt_recipe", str, _D.recipe, "paper (default): llyx97/TAMT's recipe (per-matrix magnitude "
               "init with binary scores, BERT Adam with weight decay and clipping, linear decay, resets at step 1, "
               "every ~100 paper steps and each corpus pass, dropout on, pooler and word embeddings masked) "
               f"compressed into --tamt-steps (lr and reset interval scaled by {PAPER_STEPS} / steps); "
               "global-magnitude: this project's first recipe (global |w| init, Adam 3e-4, reset every 50)",
               choices=RECIPES),
        Option("tamt_objective", str, _D.objective, "kd: distil the dense model's hidden states (any "
               "checkpoint); mlm: masked-LM loss (checkpoints with an MLM head)", choices=OBJECTIVES),
        Option("tamt_corpus", str, "../shared/data/wikitext-2", "unlabeled text: a file, or a folder of .txt "
               "files (default $SUPERTICKETS_TAMT_CORPUS, then tamt_corpus in ./supertickets.toml, then "
               "../shared/data/wikitext-2)", path=True),
        Option("tamt_steps", int, _D.steps, f"mask-training steps (default {_D.steps})"),
        Option("tamt_batch_size", int, _D.batch_size, f"text blocks per mask-training step (default {_D.batch_size})"),
        Option("tamt_max_seq_length", int, _D.max_seq_length, f"tokens per text block (default {_D.max_seq_length})"),
        Option("tamt_learning_rate", float, _D.learning_rate, "peak learning rate of the scores (default: the "
               f"recipe's, paper 2e-5 x {PAPER_STEPS} / steps, global-magnitude 3e-4)"),
        Option("tamt_reset_every", int, _D.reset_every, "steps between per-matrix threshold resets (default: the "
               f"recipe's, paper 100 x steps / {PAPER_STEPS} (at least 1), global-magnitude 50)"),
        Option("tamt_init", str, _D.init, "global-magnitude recipe's initial scores: magnitude (|w|, "
               "default) or constant (kept --tamt-init-score, pruned 0); both start from the global magnitude mask", choices=INITS),
        Option("tamt_init_score", float, _D.init_score, f"kept weights' initial score with --tamt-init constant "
               f"(default {_D.init_score})"),
        *PRUNABLE_OPTIONS,
    ),
    check=_check,
    implied=_implied,
)
