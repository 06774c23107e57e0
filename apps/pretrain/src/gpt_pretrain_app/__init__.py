"""GPT pretraining: every flag of the original pretrain_gpt.py."""
