"""The hyperparameters a model records for its model file: its constructor's arguments."""


def constructor_arguments(local_variables: dict) -> dict:
    """A model constructor's arguments, from its ``locals()`` taken right after ``super().__init__()``.

    ``elements`` becomes a list and ``cutoff`` a float; every other argument is kept as given.
    ``build_model(architecture, hyperparameters)`` rebuilds the same model from the result.
    """
    arguments = {name: value for name, value in local_variables.items() if name not in ("self", "__class__")}
    arguments["elements"] = list(arguments["elements"])
    arguments["cutoff"] = float(arguments["cutoff"])
    return arguments
