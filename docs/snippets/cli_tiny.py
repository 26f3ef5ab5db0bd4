"""The `trl-dam` command line, run from Python on a tiny model saved to a local folder."""

from trl_dam.models import build_char_tokenizer, build_tiny_masked_lm
from trl_dam.scripts.dam import main, make_parser

# A tiny LLaDA-shaped model whose tokenizer covers the compact Sudoku prompt ("4x4 sudoku: <16 digits>\n").
tokenizer = build_char_tokenizer("0123456789 sudokx:\n")
build_tiny_masked_lm(tokenizer, kind="llada").save_pretrained("tiny-llada")
tokenizer.save_pretrained("tiny-llada")

# Exactly what `trl-dam --model_name_or_path tiny-llada --task sudoku ...` parses on the command line.
argv = """
    --model_name_or_path tiny-llada --dtype float32 --task sudoku --prompt_style compact --max_train_samples 64
    --output_dir tiny-llada-dam --beta 0.05 --num_generations 4 --per_device_train_batch_size 8
    --max_completion_length 16 --max_steps 2 --bf16 false --save_strategy no
""".split()
trainer = main(*make_parser().parse_args_and_config(argv))
print(trainer.state.log_history[-1])
