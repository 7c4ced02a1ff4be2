"""vd_ros_adapt end to end on tiny data: a bag, a tiny exported model, the node on the result.

The bag holds the in-repo sample frames (Open3D renderings, scaled to 160 x 120) as a 24-frame
recording at 10 Hz; the model is a tiny Vanishing Depth export with random weights everywhere,
its completion head included, so a few steps on the recording must beat it on the recording's
held-back end (every weight drawn anew: see the ``randomise_weights`` fixture).
"""

import hashlib
import os

import numpy as np
import pytest
from std_msgs.msg import Header

from vd_ros.image_codec import image_to_array
from vd_ros.replay import frame_messages, load_frames

torch = pytest.importorskip('torch')

SIZE = (42, 56)
FRAMES = 24
SPLIT = ['--holdback', '0.25', '--gap-frames', '2', '--gap-seconds', '0.2']
FAST = ['--replay', '0', '--holdout-frames', '0', '--val-frames', '4', '--minutes', '5',
        'completion.batch_size=4', 'completion.val_every_steps=10', 'data.num_workers=0',
        'completion.points=[20,200]', 'completion.val_points=[20,200]']


@pytest.fixture(scope='module')
def tiny_model(tmp_path_factory, randomise_weights):
    """Export a tiny model with random weights and a random completion head (contract v2)."""
    from training.checkpoint.formats import COMPLETION_FORMAT
    from training.export_onnx import main as export_main
    from training.models import build_model
    from training.models.completion_head import build_completion_head

    folder = tmp_path_factory.mktemp('adapt_model')
    torch.manual_seed(0)
    config = {'img_size': list(SIZE), 'timm_kwargs': {'depth': 2, 'embed_dim': 32,
                                                      'num_heads': 2}}
    model = build_model(config).eval()
    randomise_weights(model, 1)
    torch.save({'step': 3, 'model': model.state_dict(), 'model_config': model.config,
                'config': {'data': {'sources': []}}}, folder / 'pretrain.pt')
    head = build_completion_head(model, {'channels': [8, 8, 8], 'feature_channels': 8})
    randomise_weights(head, 2)
    torch.save({'format': COMPLETION_FORMAT, 'step': 0, 'head': head.state_dict(),
                'head_config': dict(head.config), 'val_history': [],
                'encoder': {'checkpoint': 'pretrain.pt', 'step': 3,
                            'model_config': model.config}}, folder / 'head.pt')
    path = str(folder / 'tiny.onnx')
    assert export_main(['--checkpoint', str(folder / 'pretrain.pt'),
                        '--completion-head', str(folder / 'head.pt'), '--output', path,
                        '--input-size', *map(str, SIZE), '--fp16-weights',
                        'model.timm_kwargs={depth: 2, embed_dim: 32, num_heads: 2}',
                        f'model.img_size=[{SIZE[0]},{SIZE[1]}]']) == 0
    return path


@pytest.fixture(scope='module')
def recording(tmp_path_factory):
    """Write a rosbag2 of the sample frames repeated: 24 RGB-D pairs + camera_info, 10 Hz."""
    from rclpy.serialization import serialize_message
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import get_typestore, Stores

    frames = load_frames('sample', scale=0.25)
    path = tmp_path_factory.mktemp('adapt_bag') / 'room'
    topics = {'/cam/color/image_raw': 'sensor_msgs/msg/Image',
              '/cam/aligned_depth/image_raw': 'sensor_msgs/msg/Image',
              '/cam/color/camera_info': 'sensor_msgs/msg/CameraInfo'}
    with Writer(path, version=8) as writer:
        typestore = get_typestore(Stores.ROS2_JAZZY)
        connections = {topic: writer.add_connection(topic, kind, typestore=typestore)
                       for topic, kind in topics.items()}
        for index in range(FRAMES):
            stamp = 100 * 10**9 + index * 10**8
            header = Header(frame_id='cam')
            header.stamp.sec, header.stamp.nanosec = divmod(stamp, 10**9)
            messages = frame_messages(frames[index % len(frames)], header)
            for topic, msg in zip(topics, messages):
                writer.write(connections[topic], stamp, serialize_message(msg))
    return str(path)


def _adapt(recording, model, out, work, *extra):
    from training.adapt import main
    return main([recording, '--model', model, '--out', out, '--work-dir', work, *SPLIT, *FAST,
                 *extra])


@pytest.fixture(scope='module')
def adapted(tiny_model, recording, tmp_path_factory):
    """Adapt the tiny model on the bag for 30 steps; return the written file."""
    folder = tmp_path_factory.mktemp('adapted')
    out = str(folder / 'adapted.onnx')
    assert _adapt(recording, tiny_model, out, str(folder / 'work'), 'completion.max_steps=30',
                  'completion.lr=3e-3') == 0
    return out


def test_adapted_model_records_its_parent_and_beats_it(adapted, tiny_model):
    from training.export.recover import read_contract

    contract = read_contract(adapted)
    report = contract.training['adaptation']
    with open(tiny_model, 'rb') as stream:
        assert report['parent']['sha256'] == hashlib.sha256(stream.read()).hexdigest()
    assert report['recording']['source']['type'] == 'rosbag'
    assert report['recording']['split'] == 'frames 0-15 train, 18-23 held back (gap 2 frames, ' \
        '0.3 s)'
    assert report['steps'] == 30 and 0 < report['chosen_step'] <= 30
    before, after = report['held_back']['input'], report['held_back']['adapted']
    names = ['20 pts', '200 pts', 'perlin 50%']
    assert all(after[f'{n} head'] <= before[f'{n} head'] for n in names)
    assert np.mean([after[f'{n} head'] / before[f'{n} head'] for n in names]) < 1.0
    assert contract.outputs == ('features', 'depth', 'completed_depth')


def test_a_run_that_cannot_improve_writes_nothing(tiny_model, recording, tmp_path):
    out = str(tmp_path / 'never.onnx')
    # lr 0: the head never changes, so no checkpoint is better than the input model.
    assert _adapt(recording, tiny_model, out, str(tmp_path / 'work'), 'completion.max_steps=10',
                  'completion.lr=0.0') == 2
    assert not os.path.exists(out)


def test_a_stopped_run_resumes_where_it_stopped(tiny_model, recording, tmp_path):
    from training.checkpoint.files import load_checkpoint

    work = str(tmp_path / 'work')
    for steps in (4, 8):
        _adapt(recording, tiny_model, str(tmp_path / 'a.onnx'), work,
               f'completion.max_steps={steps}', 'completion.val_every_steps=4',
               'completion.checkpoint_every_steps=4')
    state = load_checkpoint(os.path.join(work, 'checkpoints', 'step_00000008.pt'))
    assert state['progress']['consumed'] == 8 * 4  # the stream went on, not over again
    assert [row['step'] for row in state['val_history']] == [4, 8]


def test_bad_recordings_get_a_clear_error(tiny_model, recording, tmp_path, caplog):
    out = str(tmp_path / 'x.onnx')
    assert _adapt(str(tmp_path / 'missing'), tiny_model, out, str(tmp_path / 'w')) == 1
    assert 'does not exist' in caplog.text
    assert _adapt(recording, tiny_model, out, str(tmp_path / 'w2'), '--gap-frames', '30') == 1
    assert 'leaves 0 to train on' in caplog.text
    assert not os.path.exists(out)


@pytest.mark.ros
def test_node_answers_on_the_adapted_model(perception, adapted):
    frame, = load_frames('sample', count=1, scale=0.25)
    node, harness = perception(topics={'depth': 'Image'}, model_path=adapted)
    assert 'completed_depth' in node.contract.outputs
    harness.frames.publish(*frame_messages(frame, Header(frame_id='cam')))
    harness.wait_for(lambda: harness.received['depth'], what='~/depth')
    depth = image_to_array(harness.received['depth'][0])
    valid = (frame.depth_m >= 0.1) & (frame.depth_m <= 10.0)
    np.testing.assert_array_equal(depth[valid], frame.depth_m[valid])
    assert np.isfinite(depth[~valid]).mean() > 0.9


@pytest.mark.ros
def test_param_set_model_path_swaps_the_model_between_frames(perception, tiny_model, adapted,
                                                             contract_model_file):
    from test_live_parameters import set_parameters

    frame, = load_frames('sample', count=1, scale=0.25)
    node, harness = perception(topics={'depth': 'Image'}, model_path=tiny_model)
    depths = []
    for expected in (tiny_model, adapted):
        if expected != node.model.path:
            result, = set_parameters(harness, model_path=expected)
            assert result.successful, result.reason
        assert node.model.path == expected and node.parameters.values['model_path'] == expected
        harness.received['depth'].clear()
        harness.frames.publish(*frame_messages(frame, Header(frame_id='cam')))
        harness.wait_for(lambda: harness.received['depth'], what='~/depth')
        depths.append(image_to_array(harness.received['depth'][0]))
    filled = ~((frame.depth_m >= 0.1) & (frame.depth_m <= 10.0))
    assert not np.allclose(depths[0][filled], depths[1][filled], equal_nan=True)  # new head
    result, = set_parameters(harness, model_path='/nonexistent.onnx')
    assert not result.successful and 'model file not found' in result.reason
    # The stand-in model has a segmentation head: configure made no publisher for it.
    result, = set_parameters(harness, model_path=contract_model_file)
    assert not result.successful and 'adds the seg_logits output' in result.reason
    assert node.model.path == adapted  # refused: the running model stays
