"""Sub-graph sessions: only the nodes feeding the asked-for outputs run, with equal results."""

import logging
import threading

from contract_model import random_inputs
import numpy as np
import onnx
from onnx import helper, TensorProto
import pytest

from vd_ros.graph_prune import node_reads, prune_outputs
from vd_ros.inference import VDModel


def test_the_pruned_graph_keeps_exactly_the_nodes_and_weights_an_output_needs(full_model_file):
    model = onnx.load(full_model_file)
    depth_only = prune_outputs(model, ['completed_depth'])
    assert [node.op_type for node in depth_only.graph.node] == ['ReduceMean', 'Add', 'Mul']
    assert sorted(init.name for init in depth_only.graph.initializer) == [
        'completed_factor', 'depth_offset']
    assert [value.name for value in depth_only.graph.output] == ['completed_depth']
    assert [value.name for value in depth_only.graph.input] == ['rgb', 'pde']
    assert depth_only.metadata_props == model.metadata_props
    both = prune_outputs(model, ['seg_logits', 'depth_uncertainty'])
    assert 'Resize' not in {node.op_type for node in both.graph.node}  # descriptors only
    assert len(both.graph.node) == len(model.graph.node) - 2
    onnx.checker.check_model(both)
    with pytest.raises(ValueError, match=r"\['normals'\] are not outputs"):
        prune_outputs(model, ['normals'])


def test_a_node_with_a_subgraph_reads_the_outer_names_it_uses():
    inner = helper.make_graph([helper.make_node('Identity', ['outer_x'], ['y'])], 'then', [],
                              [helper.make_tensor_value_info('y', TensorProto.FLOAT, [1])])
    branch = helper.make_node('If', ['cond'], ['out'], then_branch=inner, else_branch=inner)
    assert node_reads(branch) == {'cond', 'outer_x'}


def test_sub_sessions_answer_as_the_full_graph_once_built(full_model_file, caplog, monkeypatch):
    model = VDModel(full_model_file, providers=['cpu'])
    reference = VDModel(full_model_file, providers=['cpu'], prune=False)
    assert model.prunes and not reference.prunes
    rgb, pde = random_inputs(model.contract)
    full = reference.run(rgb, pde)
    wanted = ['completed_depth', 'depth_uncertainty']
    with caplog.at_level(logging.INFO, logger='vd_ros.inference'):
        model.sub_graph_for(wanted)
        model.wait_for_sub_sessions()
    sub = model.sub_graph_for(wanted).early
    assert sub is not model.session and [o.name for o in sub.get_outputs()] == wanted
    assert 'now computed by their sub-graph (5 of 10 nodes)' in caplog.text
    for names in (wanted, ['features'], ['descriptors', 'seg_logits']):
        model.run(rgb, pde, names)
        model.wait_for_sub_sessions()
        out = model.run(rgb, pde, names)
        assert sorted(out) == sorted(names)
        for name in names:
            np.testing.assert_array_equal(out[name], full[name])
    # everything: the full graph
    assert model.sub_graph_for(model.output_names).early is model.session
    monkeypatch.setattr('vd_ros.inference.MAX_SUB_SESSIONS', 3)  # three sets are built
    assert model.sub_graph_for(['depth']).early is model.session
    model.wait_for_sub_sessions()
    assert model.sub_graph_for(['depth']).early is model.session
    assert reference.sub_graph_for(wanted).early is reference.session


def test_the_full_graph_answers_while_a_sub_graph_is_built(full_model_file, monkeypatch):
    model = VDModel(full_model_file, providers=['cpu'])
    release = threading.Event()

    def slow(loaded, names):
        release.wait(10.0)
        return prune_outputs(loaded, names)

    monkeypatch.setattr('vd_ros.inference.prune_outputs', slow)
    rgb, pde = random_inputs(model.contract)
    assert model.sub_graph_for(['depth']).early is model.session
    assert list(model.run(rgb, pde, ['depth'])) == ['depth']  # answered by the full graph
    assert model.sub_graph_for(['depth']).early is model.session
    release.set()
    model.wait_for_sub_sessions()
    assert model.sub_graph_for(['depth']).early is not model.session


def test_a_sub_graph_that_cannot_be_built_leaves_the_full_graph_answering(
        full_model_file, monkeypatch, caplog):
    model = VDModel(full_model_file, providers=['cpu'])

    def broken(loaded, names):
        raise ValueError('no such graph')

    monkeypatch.setattr('vd_ros.inference.prune_outputs', broken)
    rgb, pde = random_inputs(model.contract)
    with caplog.at_level(logging.WARNING, logger='vd_ros.inference'):
        model.run(rgb, pde, ['depth'])
        model.wait_for_sub_sessions()
        out = model.run(rgb, pde, ['depth'])
    assert model.sub_graph_for(['depth']).early is model.session and list(out) == ['depth']
    assert "no sub-graph session for outputs ['depth'] (no such graph)" in caplog.text
    assert caplog.text.count('no sub-graph session') == 1
