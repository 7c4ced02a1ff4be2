"""Model contract metadata: round trip and refusal of what the node cannot use."""

import json

import pytest

from vd_ros.core.contract import CONTRACT_VERSION, ContractError, ModelContract, parse_metadata
from vd_ros.core.pde import PDEConfig


def make_contract(**overrides):
    fields = {'encoder': 'vit_small_patch14_dinov2', 'patch_size': 14,
              'input_size': (336, 448), 'mean': (0.485, 0.456, 0.406),
              'std': (0.229, 0.224, 0.225), 'pde': PDEConfig(), 'feature_dim': 384,
              'class_names': ('background', 'mug'), 'trained': False,
              'outputs': ('features', 'depth', 'seg_logits')}
    fields.update(overrides)
    return ModelContract(**fields)


def test_round_trip():
    contract = make_contract()
    assert parse_metadata(contract.to_json()) == contract


def test_wrong_version_names_file_and_versions():
    meta = json.loads(make_contract().to_json())
    meta['contract_version'] = CONTRACT_VERSION + 1
    with pytest.raises(ContractError) as error:
        parse_metadata(json.dumps(meta), 'model.onnx')
    text = str(error.value)
    assert 'model.onnx' in text and str(CONTRACT_VERSION + 1) in text
    assert 'version 1, 2, 3 or 4 expected' in text


def test_version_1_files_read_unchanged_and_completed_depth_needs_version_2():
    meta = json.loads(make_contract().to_json())
    meta['contract_version'] = 1
    contract = parse_metadata(json.dumps(meta))
    assert contract.contract_version == 1 and contract.outputs == make_contract().outputs
    meta['outputs'] = meta['outputs'] + ['completed_depth']
    with pytest.raises(ContractError, match='completed_depth needs model contract version 2'):
        parse_metadata(json.dumps(meta), 'model.onnx')
    meta['contract_version'] = 2
    assert 'completed_depth' in parse_metadata(json.dumps(meta)).outputs


@pytest.mark.parametrize('mutate, message', [
    (lambda m: m.pop('pde'), 'lacks'),
    (lambda m: m.update(input_size=[335, 448]), 'multiples'),
    (lambda m: m.update(outputs=['depth']), 'features'),
    (lambda m: m.update(class_names=[]), 'class_names'),
    (lambda m: m['pde'].update(channels=7), 'even'),
])
def test_invalid_metadata_is_refused(mutate, message):
    meta = json.loads(make_contract().to_json())
    mutate(meta)
    with pytest.raises(ContractError, match=message):
        parse_metadata(json.dumps(meta), 'm.onnx')


def test_not_json_is_refused():
    with pytest.raises(ContractError, match='not valid JSON'):
        parse_metadata('{nope', 'm.onnx')


def test_class_colors_round_trip_and_files_without_them_read_as_empty():
    coloured = make_contract(class_colors=((0, 0, 0), (255, 128, 0)))
    meta = json.loads(coloured.to_json())
    assert meta['class_colors'] == [[0, 0, 0], [255, 128, 0]]
    assert parse_metadata(coloured.to_json()) == coloured
    plain = json.loads(make_contract().to_json())
    assert 'class_colors' not in plain  # files without colours keep their former metadata
    assert parse_metadata(json.dumps(plain)).class_colors == ()


@pytest.mark.parametrize('colors', [[[0, 0, 0]], [[0, 0, 0], [256, 0, 0]], [[0, 0], [1, 2]]])
def test_class_colors_must_give_one_rgb_per_class(colors):
    meta = json.loads(make_contract().to_json())
    meta['class_colors'] = colors
    with pytest.raises(ContractError, match=r'm\.onnx: class_colors .* one \[r, g, b\] of '
                       r'integers 0\.\.255 per class \(2 class_names\)'):
        parse_metadata(json.dumps(meta), 'm.onnx')


def test_version_3_round_trip_with_depth_uncertainty():
    contract = make_contract(outputs=('features', 'depth', 'seg_logits', 'completed_depth',
                                      'depth_uncertainty'), contract_version=3)
    meta = json.loads(contract.to_json())
    assert meta['contract_version'] == 3 and meta['outputs'][-1] == 'depth_uncertainty'
    assert parse_metadata(contract.to_json()) == contract


def test_version_2_file_still_loads_and_depth_uncertainty_needs_version_3():
    v2_text = json.dumps({  # metadata as the v2 exporter wrote it, key for key
        'contract_version': 2, 'encoder': 'vit_tiny', 'patch_size': 14,
        'input_size': [126, 168], 'mean': [0.485, 0.456, 0.406],
        'std': [0.229, 0.224, 0.225], 'pde': PDEConfig().to_dict(), 'feature_dim': 192,
        'class_names': [], 'trained': True, 'training': {},
        'outputs': ['features', 'depth', 'completed_depth']})
    contract = parse_metadata(v2_text, 'v2.onnx')
    assert contract.contract_version == 2
    assert contract.outputs == ('features', 'depth', 'completed_depth')
    meta = json.loads(v2_text)
    meta['outputs'].append('depth_uncertainty')
    with pytest.raises(ContractError,
                       match='v2.onnx: depth_uncertainty needs model contract version 3'):
        parse_metadata(json.dumps(meta), 'v2.onnx')
    meta['contract_version'] = 3
    assert parse_metadata(json.dumps(meta)).outputs[-1] == 'depth_uncertainty'


def test_depth_uncertainty_without_completed_depth_is_refused():
    meta = json.loads(make_contract(outputs=('features', 'depth', 'seg_logits',
                                             'depth_uncertainty')).to_json())
    with pytest.raises(ContractError, match='m.onnx: depth_uncertainty is the uncertainty of '
                       'completed_depth, which is missing'):
        parse_metadata(json.dumps(meta), 'm.onnx')


def test_version_4_descriptors_round_trip_and_need_version_4():
    contract = make_contract(outputs=('features', 'depth', 'seg_logits', 'descriptors'))
    assert contract.contract_version == 4
    assert parse_metadata(contract.to_json()) == contract
    meta = json.loads(contract.to_json())
    meta['contract_version'] = 3
    with pytest.raises(ContractError, match='descriptors needs model contract version 4'):
        parse_metadata(json.dumps(meta), 'm.onnx')
