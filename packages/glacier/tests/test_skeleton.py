import importlib.metadata as md


def test_entry_point_is_declared_and_importable():
    eps = [ep for ep in md.entry_points(group="mars_core") if ep.name == "glacier"]
    assert len(eps) == 1
    module = eps[0].load()
    assert module.__name__ == "mars_glacier.plugin"


def test_registers_no_task_yet():
    from mars_core.plugins import collect, load_plugins

    regs = collect(load_plugins())
    assert "glacier" not in regs.tasks
