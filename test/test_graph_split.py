"""The model cut before its heads: parts that compute what the whole graph does."""

import logging

from contract_model import build_contract_model, random_inputs, tiny_contract
import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto
import onnxruntime as ort
import pytest

from vd_ros.graph_split import split_heads, split_outputs
from vd_ros.inference import VDModel


def head_graph() -> onnx.ModelProto:
    """Return a head that reads two tensors of the rest and a float16 weight both parts cast.

    depth = relu(x) + weight, other = -inner with inner = 2 x (outputs of the rest);
    completed_depth = depth * inner + weight (the head).
    """
    half = numpy_helper.from_array(np.full((1, 4), 0.5, np.float16), 'weight16')
    two = numpy_helper.from_array(np.full((1, 4), 2.0, np.float32), 'two')
    nodes = [helper.make_node('Cast', ['weight16'], ['weight'], to=TensorProto.FLOAT),
             helper.make_node('Mul', ['x', 'two'], ['inner']),
             helper.make_node('Neg', ['inner'], ['other']),
             helper.make_node('Relu', ['x'], ['relu']),
             helper.make_node('Add', ['relu', 'weight'], ['depth']),
             helper.make_node('Mul', ['depth', 'inner'], ['product']),
             helper.make_node('Add', ['product', 'weight'], ['completed_depth'])]
    value = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 4])  # noqa
    graph = helper.make_graph(nodes, 'head', [value('x')],
                              [value('depth'), value('other'), value('completed_depth')],
                              [half, two])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)], ir_version=8)


def run(model: onnx.ModelProto, feeds: dict) -> dict:
    session = ort.InferenceSession(model.SerializeToString(), providers=['CPUExecutionProvider'])
    names = [value.name for value in session.get_outputs()]
    return dict(zip(names, session.run(names, {
        value.name: feeds[value.name] for value in session.get_inputs()})))


def test_the_cut_passes_the_inner_tensors_and_each_part_casts_its_own_weights():
    model = head_graph()
    early, late, cut = split_outputs(model, ['depth', 'completed_depth'])
    assert cut == ['depth', 'inner']  # the Cast of constants is no cut: both parts compute it
    assert [node.op_type for node in late.graph.node] == ['Cast', 'Mul', 'Add']
    assert [value.name for value in late.graph.input] == ['depth', 'inner']
    assert [value.name for value in early.graph.output] == ['depth', 'inner']
    onnx.checker.check_model(early)
    onnx.checker.check_model(late)
    x = np.array([[-1.0, 0.0, 1.5, 3.0]], np.float32)
    whole, first = run(model, {'x': x}), run(early, {'x': x})
    second = run(late, {'x': x, **first})
    np.testing.assert_array_equal(first['depth'], whole['depth'])
    np.testing.assert_array_equal(second['completed_depth'], whole['completed_depth'])


def test_a_split_needs_a_head_output_with_nodes_of_its_own():
    model = head_graph()
    with pytest.raises(ValueError, match='nothing to split'):
        split_outputs(model, ['depth'])
    shared = head_graph()
    shared.graph.node[-1].output[0] = 'late'  # completed_depth now also feeds depth
    shared.graph.node.append(helper.make_node('Identity', ['late'], ['completed_depth']))
    shared.graph.node.append(helper.make_node('Neg', ['completed_depth'], ['depth2']))
    shared.graph.output.append(helper.make_tensor_value_info('depth2', TensorProto.FLOAT,
                                                             [1, 4]))  # the rest reads it
    with pytest.raises(ValueError, match='no nodes of their own'):
        split_outputs(shared, ['completed_depth'])


def test_two_heads_are_cut_off_in_order_and_their_parts_compute_the_whole_graph(
        full_model_file):
    model = onnx.load(full_model_file)
    wanted = ['depth', 'features', 'completed_depth', 'descriptors']
    early, early_names, lates = split_heads(model, wanted)
    assert [names for _, names in lates] == [['completed_depth'], ['descriptors']]
    assert sorted(early_names) == ['depth', 'features']  # and the cuts: 'depth', 'features'
    assert [node.op_type for node in lates[1][0].graph.node] == ['Resize', 'LpNormalization']
    rgb, pde = random_inputs(tiny_contract())
    whole, first = run(model, {'rgb': rgb, 'pde': pde}), run(early, {'rgb': rgb, 'pde': pde})
    for late, names in lates:
        second = run(late, {'rgb': rgb, 'pde': pde, **first})
        for name in names:
            np.testing.assert_array_equal(second[name], whole[name])


def test_staged_runs_give_the_full_graph_outputs_once_built(full_model_file, caplog):
    model = VDModel(full_model_file, providers=['cpu'])
    assert model.splits
    rgb, pde = random_inputs(model.contract)
    full = VDModel(full_model_file, providers=['cpu'], prune=False).run(rgb, pde)
    wanted = ['depth', 'completed_depth', 'depth_uncertainty', 'features', 'descriptors']
    with caplog.at_level(logging.INFO, logger='vd_ros.inference'):
        first = model.run_staged(rgb, pde, wanted)  # split or not: built in the background
        model.wait_for_sub_sessions()
    assert sorted(first.complete()) == sorted(wanted)
    assert 'in 3 parts' in caplog.text
    staged = model.run_staged(rgb, pde, wanted)
    assert staged.split and sorted(staged.early) == ['depth', 'features']
    batches = list(staged.batches())  # the descriptors after the depth and the early outputs
    assert [sorted(batch) for batch in batches] == [
        ['completed_depth', 'depth', 'depth_uncertainty', 'features'], ['descriptors']]
    assert staged.late_s > 0
    out = {**batches[0], **batches[1]}
    for name in wanted:
        np.testing.assert_array_equal(out[name], full[name])
    late_only = model.run_staged(rgb, pde, ['completed_depth'])  # 'depth' only as the cut
    model.wait_for_sub_sessions()
    late_only = model.run_staged(rgb, pde, ['completed_depth'])
    assert late_only.split and late_only.early == {}
    np.testing.assert_array_equal(late_only.complete()['completed_depth'],
                                  full['completed_depth'])
    model.prepare(['depth', 'descriptors'])  # no completion head: the early outputs go first
    model.wait_for_sub_sessions()
    batches = list(model.run_staged(rgb, pde, ['depth', 'descriptors']).batches())
    assert [sorted(batch) for batch in batches] == [['depth'], ['descriptors']]
    first = VDModel(full_model_file, providers=['cpu'], split_descriptors=False)
    first.prepare(wanted)
    first.wait_for_sub_sessions()
    staged = first.run_staged(rgb, pde, wanted)  # the descriptor head in the early part
    assert sorted(staged.early) == ['depth', 'descriptors', 'features']
    batches = list(staged.batches())
    assert len(batches) == 1 and sorted(batches[0]) == sorted(wanted)
    for name in wanted:
        np.testing.assert_array_equal(batches[0][name], full[name])


def test_without_split_or_a_head_output_the_first_part_computes_everything(full_model_file):
    plain = VDModel(full_model_file, providers=['cpu'], split=False)
    rgb, pde = random_inputs(plain.contract)
    plain.prepare(['completed_depth'])
    plain.wait_for_sub_sessions()
    assert not plain.splits and not plain.run_staged(rgb, pde, ['completed_depth']).split
    model = VDModel(full_model_file, providers=['cpu'])
    model.prepare(['features'])
    model.wait_for_sub_sessions()
    staged = model.run_staged(rgb, pde, ['features'])
    assert not staged.split and list(staged.complete()) == ['features']


def test_a_head_without_nodes_of_its_own_runs_pruned_in_one_part(tmp_path, monkeypatch, caplog):
    path = tmp_path / 'full.onnx'
    build_contract_model(str(path), tiny_contract(completed_depth=True))

    def no_cut(model, names, head):
        raise ValueError('no nodes of their own: no cut')

    monkeypatch.setattr('vd_ros.graph_split.split_outputs', no_cut)
    model = VDModel(str(path), providers=['cpu'])
    rgb, pde = random_inputs(model.contract)
    with caplog.at_level(logging.INFO):
        model.prepare(['completed_depth'])
        model.wait_for_sub_sessions()
    staged = model.run_staged(rgb, pde, ['completed_depth'])
    assert not staged.split and list(staged.complete()) == ['completed_depth']
    assert model.sub_graph_for(['completed_depth'], True).early is not model.session
    assert "['completed_depth', 'depth_uncertainty'] stay in the early part: no nodes of " \
        'their own: no cut' in caplog.text
    assert 'run in one part (no head has a cut)' in caplog.text
