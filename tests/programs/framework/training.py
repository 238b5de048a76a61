"""A framework toolkit's training entry point, as the SageMaker PyTorch toolkit's: the user's
script runs through the training toolkit with capture_error=True (its stdout and stderr are
pipes the toolkit relays)."""

from sagemaker_training import entry_point, environment


def main() -> None:
    env = environment.Environment()
    entry_point.run(uri=env.module_dir, user_entry_point=env.user_entry_point, args=env.to_cmd_args(),
                    env_vars=env.to_env_vars(), capture_error=True)
