"""Segmentation heads, label layouts, heads files and train_heads against independent facts."""

import os

import cv2
import numpy as np
import pytest
import torch

from training.checkpoint.heads import (HeadsMismatchError, load_heads_checkpoint,
                                       save_heads_checkpoint)
from training.data.datasets import build_source
from training.data.label_layouts import (get_layout, IGNORE_LABEL, NYU40_CLASSES, remap_labels,
                                         SUN37_CLASSES, training_labels, YCBV_CLASSES)
from training.models import build_model
from training.models.heads import build_seg_head
from training.train_heads import (load_frames, load_heads_config, main as train_heads_main,
                                  model_inputs, train_head)
from vd_ros.core.contract import ModelContract
from vd_ros.core.pde import PDEConfig

TINY = {'timm_kwargs': {'depth': 2, 'embed_dim': 64, 'num_heads': 2}}


def tiny_model(seed: int = 0):
    """Build the 2-block, 64-wide test model with a fixed seed."""
    torch.manual_seed(seed)
    return build_model(TINY).eval()


def test_ycbv_layout_matches_the_dataset_model_folders(shared_data):
    """Check: ycbv layout matches the dataset model folders."""
    folders = sorted(os.listdir(os.path.join(shared_data, 'ycbv', 'models')))
    assert list(YCBV_CLASSES) == ['background'] + folders
    assert get_layout('ycbv').num_classes == 22 and get_layout('ycbv').ignore_id is None


def test_nyu40_and_sun37_layouts():
    """Check: nyu40 and sun37 layouts."""
    assert len(NYU40_CLASSES) == 41 and NYU40_CLASSES[40] == 'otherprop'
    assert len(SUN37_CLASSES) == 38 and SUN37_CLASSES[37] == 'bag'
    assert SUN37_CLASSES[1:4] == ('wall', 'floor', 'cabinet') == NYU40_CLASSES[1:4]
    with pytest.raises(ValueError, match='voc'):
        get_layout('voc')


def test_training_labels_ignore_unlabelled_and_refuse_raw_ids():
    """Check: training labels ignore unlabelled and refuse raw ids."""
    layout = get_layout('nyu40')
    label = np.array([[0, 1], [40, 7]])
    assert training_labels(label, layout).tolist() == [[IGNORE_LABEL, 1], [40, 7]]
    with pytest.raises(ValueError, match=r'frame\.png: label 500 outside the nyu40'):
        training_labels(np.array([[3, 500]]), layout, 'frame.png')
    ycbv = training_labels(np.array([[0, 21]]), get_layout('ycbv'))
    assert ycbv.tolist() == [[0, 21]]  # background is a class in YCB-Video


def test_remap_labels_through_a_table():
    """Check: remap labels through a table."""
    table = np.array([0, 3, 3, 1])
    assert remap_labels(np.array([[1, 2], [3, 0]]), table).tolist() == [[3, 3], [1, 0]]
    with pytest.raises(ValueError, match='raw label 4 outside'):
        remap_labels(np.array([4]), table)


def test_linear_head_is_bn_then_1x1_conv():
    """Check: linear head is bn then 1x1 conv."""
    torch.manual_seed(1)
    head = build_seg_head('linear', feature_dim=3, num_classes=4).eval()
    norm = head.norm
    norm.running_mean.uniform_(-1, 1)
    norm.running_var.uniform_(0.5, 2)
    norm.weight.data.uniform_(0.5, 1.5)
    norm.bias.data.uniform_(-0.5, 0.5)
    maps = [torch.randn(2, 3, 5, 6) for _ in range(4)]
    with torch.no_grad():
        logits = head(maps).numpy()
    x = np.concatenate([m.numpy() for m in maps], axis=1)  # (2, 12, 5, 6)
    g = lambda t: t.detach().numpy()[None, :, None, None]  # noqa: E731
    normed = (x - g(norm.running_mean)) / np.sqrt(g(norm.running_var) + norm.eps) \
        * g(norm.weight) + g(norm.bias)
    weight = head.classifier.weight.detach().numpy()[:, :, 0, 0]  # (4, 12)
    expected = np.einsum('kc,bchw->bkhw', weight, normed) + g(head.classifier.bias)
    assert logits.shape == (2, 4, 5, 6)
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('size', [(8, 10), (5, 7)])
def test_fpn_head_output_is_four_times_the_patch_grid(size):
    """Check: fpn head output is four times the patch grid."""
    head = build_seg_head('fpn', feature_dim=16, num_classes=3, channels=8).eval()
    maps = [torch.randn(2, 16, *size) for _ in range(4)]
    assert tuple(head(maps).shape) == (2, 3, 4 * size[0], 4 * size[1])
    with pytest.raises(ValueError, match='expects 4 maps, got 3'):
        head(maps[:3])
    with pytest.raises(ValueError, match='unknown segmentation head'):
        build_seg_head('mask2former', 16, 3)


@pytest.fixture
def one_thread():
    """Run tiny tensors on one thread: OpenMP barriers dominate on a loaded 2-core machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize('kind', ['linear', 'fpn'])
def test_train_head_learns_a_separable_problem(kind, one_thread):
    """Class = argmax of 3 channels of the deepest map; chance is 1/3, the head must learn it."""
    generator = torch.Generator().manual_seed(0)
    maps = torch.randn(8, 4, 6, 6, 6, generator=generator)  # (N, maps, D, h, w)
    labels = maps[:, 3, :3].argmax(dim=1)  # (N, h, w): the model grid is the label grid
    labels[:, :1] = IGNORE_LABEL
    torch.manual_seed(0)
    head = build_seg_head(kind, 6, 3, **({'channels': 16} if kind == 'fpn' else {}))
    losses = train_head(head, maps, labels, steps=100, batch_size=4, lr=1e-2,
                        weight_decay=0.0, seed=0, device=torch.device('cpu'))
    assert losses[-1] < 0.5 * losses[0]
    with torch.no_grad():
        logits = torch.nn.functional.interpolate(head(list(maps.unbind(1))), size=(6, 6),
                                                 mode='bilinear')
    keep = labels != IGNORE_LABEL
    accuracy = (logits.argmax(1)[keep] == labels[keep]).float().mean().item()
    assert accuracy > 0.85


def _frame_names(sources, base_dir):
    return [os.path.relpath(frame.name, base_dir) for spec in sources
            for frame in build_source(spec, base_dir=base_dir).frames]


def test_default_split_trains_on_0000_0001_and_0002_1_to_10_and_scores_0002_11_to_20(
        shared_data):
    """heads.yaml's split: no frame on both sides, 0002 on both sides."""
    hcfg = load_heads_config([], [])['heads']
    train = _frame_names(hcfg['train'], shared_data)
    scored = _frame_names(hcfg['eval'], shared_data)
    video = lambda v, ids: [os.path.join('ycbv', 'frames', v, f'{i:06d}-depth.png')  # noqa
                            for i in ids]
    assert train == video('0000', range(1, 21)) + video('0001', range(1, 21)) + \
        video('0002', range(1, 11))
    assert scored == video('0002', range(11, 21))


def test_head_sources_must_be_a_list():
    """A single mapping (the old heads.train form) is refused with the expected form."""
    with pytest.raises(ValueError, match=r'non-empty list of sources \({type, root, select}\)'):
        load_frames({'type': 'ycbv', 'root': 'ycbv/frames/0000'}, '.')
    with pytest.raises(ValueError, match='non-empty list'):
        load_frames([], '.')


def test_model_inputs_letterbox_labels_and_ignore_padding():
    """Check: model inputs letterbox labels and ignore padding."""
    contract = ModelContract(encoder='x', patch_size=14, input_size=(112, 140), mean=(0,) * 3,
                             std=(1,) * 3, pde=PDEConfig(channels=4), feature_dim=8)
    label = np.zeros((480, 640), np.int64)
    label[:, 320:] = 2
    label[:10, :] = IGNORE_LABEL
    rgb = np.zeros((480, 640, 3), np.uint8)
    depth = np.full((480, 640), 1.5, np.float32)
    _, pde, labels, letterbox = model_inputs(rgb, depth, label, contract)
    assert pde.shape == (1, 4, 112, 140)
    rows, cols = letterbox.content_size  # 105 x 140: 3 / 4 rows of padding
    top = letterbox.pad_top
    assert (rows, cols, top) == (105, 140, 3)
    assert np.all(labels[:top] == IGNORE_LABEL) and np.all(labels[top + rows:] == IGNORE_LABEL)
    content = labels[top + 3:top + rows]
    assert np.all(content[:, :69] == 0) and np.all(content[:, 71:] == 2)
    assert np.all(labels[top] == IGNORE_LABEL)  # camera rows 0..9 are ignored there


def test_heads_file_round_trip_and_fingerprint(tmp_path):
    """Check: heads file round trip and fingerprint."""
    model = tiny_model(0)
    head = build_seg_head('linear', model.feature_dim, 3)
    torch.nn.init.normal_(head.classifier.weight)
    path = str(tmp_path / 'linear.pt')
    save_heads_checkpoint(path, head, model, class_names=['bg', 'a', 'b'], layout='custom')
    loaded, info = load_heads_checkpoint(path, tiny_model(0))
    assert info['class_names'] == ['bg', 'a', 'b']
    assert torch.equal(loaded.classifier.weight, head.classifier.weight)
    with pytest.raises(HeadsMismatchError, match='linear.pt: head was trained on encoder'):
        load_heads_checkpoint(path, tiny_model(1))
    with pytest.raises(ValueError, match='2 class names for a head with 3'):
        save_heads_checkpoint(path, head, model, class_names=['bg', 'a'])


@pytest.mark.slow
def test_train_heads_end_to_end_on_ycbv(shared_data, tmp_path):
    """A checkpoint's heads, the same heads on the random-init encoder, the majority class."""
    checkpoint = tmp_path / 'pretrained.pt'
    model = tiny_model(0)
    with torch.no_grad():
        next(model.adapter.parameters()).mul_(2.0)  # differs from the seed's random init
    torch.save({'model': model.state_dict(), 'model_config': model.config, 'step': 7},
               checkpoint)
    report = tmp_path / 'seg.md'
    train_heads_main([
        '--checkpoint', str(checkpoint), '--output-dir', str(tmp_path), '--report', str(report),
        'heads.steps=3', 'heads.input_size=[56,70]', 'heads.hflip=false',
        'heads.fpn_channels=8', f'data.base_dir={shared_data}',
        'heads.train=[{type: ycbv, root: ycbv/frames/0000, select: [0, 2]}]',
        'heads.eval=[{type: ycbv, root: ycbv/frames/0001, select: [0, 3]}]',
        'model.timm_kwargs={depth: 2, embed_dim: 64, num_heads: 2}'])
    text = report.read_text()
    # The majority class of the training frames is background; predicting it everywhere has
    # the background share of the evaluation labels as pixel accuracy.
    labels = [cv2.imread(os.path.join(shared_data, 'ycbv', 'frames', '0001',
                                      f'{i:06d}-label.png'), cv2.IMREAD_UNCHANGED)
              for i in (1, 2, 3)]
    share = np.mean(np.concatenate([lab.ravel() for lab in labels]) == 0)
    assert f'| majority class (background) | {100 * share / 5:.2f} | {100 * share:.2f} |' \
        in text  # 5 classes in the eval ground truth: background + 4 objects
    rows = [line.split('|')[1].strip() for line in text.splitlines() if line.startswith('| ')]
    assert rows[1:] == ['linear', 'fpn', 'linear, random-init encoder',
                        'fpn, random-init encoder', 'majority class (background)']
    assert 'data/ycbv/frames/0000 select [0, 2]' in text
    assert shared_data not in text  # data paths relative to ../shared
    assert f'checkpoint {checkpoint} (step 7)' in text  # outside repo and shared: as given
    for kind in ('linear', 'fpn'):
        _, info = load_heads_checkpoint(str(tmp_path / f'{kind}.pt'), model)
        assert info['class_names'] == list(YCBV_CLASSES) and info['layout'] == 'ycbv'
        assert 0.0 <= info['metrics']['miou'] <= 1.0
