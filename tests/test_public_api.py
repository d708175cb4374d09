import hindsight


def test_all_lists_exactly_the_public_names() -> None:
    for name in hindsight.__all__:  # the lazy ones load here
        assert getattr(hindsight, name) is not None
    public = {name for name in vars(hindsight) if not name.startswith("_")}
    modules = {name for name, value in vars(hindsight).items()
               if type(value).__name__ == "module"}
    assert set(hindsight.__all__) == public - modules
    assert set(dir(hindsight)) == set(hindsight.__all__)
