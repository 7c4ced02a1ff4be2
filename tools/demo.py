"""``make demo``: a model, the node, real frames over DDS, PNG panels and a latency summary.

Steps: obtain a model (``--model``, else the shipped trained model the README starts the node
with, ``models/vd_cpu_int8.onnx``, see ``models/MODEL_CARD.md``, else a random-init export by
``python -m training.export_onnx``, see ``bench/vd_export.py``), start the perception node as a
subprocess, replay held-out 7-Scenes frames (350-399, the test split: never trained on) from
../shared/data (or the in-repo sample) one at a time over real DDS, and write
``panel_NNN.png`` (RGB | input depth | completed depth | segmentation | feature PCA, and
``~/depth/confidence`` for a model with ``depth_uncertainty``) plus
``summary.json`` / ``summary.md`` to ``--out``. The output says which model ran and whether it
is trained.
"""

import argparse
import json
import os
import sys
import time

import cv2
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
SHIPPED_MODEL = os.path.join(ROOT, 'models', 'vd_cpu_int8.onnx')
HELD_OUT_7SCENES = 350  # the test split of training/configs/cpu.yaml: 7-Scenes 350-399
OUTPUTS = ('depth', 'segmentation/color', 'features/pca')
CONFIDENCE = 'depth/confidence'  # published for models with depth_uncertainty only


def obtain_model(requested: str) -> tuple:
    """Return (model path, how it was obtained)."""
    from bench.vd_export import export_random_vd_model

    if requested:
        return requested, f'given: {requested}'
    if os.path.isfile(SHIPPED_MODEL):
        return SHIPPED_MODEL, 'shipped with the repository (models/MODEL_CARD.md)'
    return export_random_vd_model(), 'exported by training/export_onnx.py (random init)'


def colour_depth(depth: np.ndarray, max_m: float) -> np.ndarray:
    """Colour-map depth in metres (0/NaN black) as RGB."""
    valid = np.isfinite(depth) & (depth > 0)
    scaled = np.clip(np.nan_to_num(depth) / max_m * 255, 0, 255).astype(np.uint8)
    rgb = cv2.cvtColor(cv2.applyColorMap(scaled, cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)
    rgb[~valid] = 0
    return rgb


def colour_confidence(confidence: np.ndarray) -> np.ndarray:
    """Colour-map a confidence in [0, 1] as RGB (viridis: dark = unreliable)."""
    scaled = (np.clip(np.nan_to_num(confidence), 0.0, 1.0) * 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(scaled, cv2.COLORMAP_VIRIDIS), cv2.COLOR_BGR2RGB)


COLUMNS = ('RGB', 'input depth (0-5 m)', 'completed depth', 'segmentation', 'feature PCA',
           'confidence (0-1)')


def titled_row(images: list, trained: str) -> np.ndarray:
    """Put the panel images side by side under a strip naming each column and the model."""
    row = np.concatenate(images, axis=1)  # (H, 5 or 6 W, 3)
    strip = np.full((28, row.shape[1], 3), 255, np.uint8)
    width = images[0].shape[1]
    for index, title in enumerate(COLUMNS[:len(images)]):
        label = f'{title} - {trained}' if index == 0 else title
        cv2.putText(strip, label, (8 + index * width, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                    (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([strip, row], axis=0)


def record_panels(recorder, frames, out_dir: str, trained: str, outputs=OUTPUTS) -> tuple:
    """Send the frames one at a time and write a panel per frame.

    Returns:
        (round-trip latencies in ms, panel paths, elapsed seconds).
    """
    from std_msgs.msg import Header

    from vd_ros.image_codec import image_to_array
    from vd_ros.replay import frame_messages

    latencies, panels = [], []
    start = time.monotonic()
    for index, frame in enumerate(frames):
        rgb, depth, info = frame_messages(frame, Header(frame_id='camera'))
        sent = time.monotonic()
        recorder.frames.publish(rgb, depth, info)
        stamp = (rgb.header.stamp.sec, rgb.header.stamp.nanosec)
        while not recorder.complete(stamp) and time.monotonic() - sent < 30:
            time.sleep(0.005)
        if not recorder.complete(stamp):
            print(f'frame {index}: no complete output within 30 s')
            continue
        latencies.append((time.monotonic() - sent) * 1e3)
        out = {topic: image_to_array(recorder.received[topic][stamp][0]) for topic in outputs}
        images = [frame.rgb, colour_depth(frame.depth_m, 5.0), colour_depth(out['depth'], 5.0),
                  out['segmentation/color'],
                  cv2.resize(out['features/pca'], frame.rgb.shape[1::-1],
                             interpolation=cv2.INTER_NEAREST)]
        if CONFIDENCE in out:
            images.append(colour_confidence(out[CONFIDENCE]))
        panel = titled_row(images, trained)
        name = os.path.join(out_dir, f'panel_{index:03d}.png')
        cv2.imwrite(name, cv2.cvtColor(panel, cv2.COLOR_RGB2BGR))
        panels.append(name)
    return latencies, panels, time.monotonic() - start


def main():
    """Run the demo."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', default='demo_out')
    parser.add_argument('--model', help='ONNX model (default: the shipped '
                        'models/vd_cpu_int8.onnx, else a random-init VD export)')
    parser.add_argument('--frames', type=int, default=8)
    args = parser.parse_args()
    from vd_ros.dds_transport import use_large_image_transport
    use_large_image_transport()
    os.environ.setdefault('ROS_DOMAIN_ID', str(1 + os.getpid() % 200))
    from bench.ros_session import NodeSession
    from vd_ros.inference import VDModel
    from vd_ros.replay import load_frames, SAMPLE_DIR

    os.makedirs(args.out, exist_ok=True)
    model_path, origin = obtain_model(args.model)
    contract = VDModel(model_path, ['cpu']).contract
    steps = contract.training.get('steps')
    trained = f'TRAINED ({steps} steps)' if contract.trained else 'NOT TRAINED (random weights)'
    print(f'model: {model_path}\n  {origin}\n  {trained}, encoder {contract.encoder}')
    shared = os.environ.get('VD_ROS_SHARED', os.path.join(ROOT, '..', 'shared'))
    kitchen = os.path.join(shared, 'data', '7scenes_redkitchen')
    source = kitchen if os.path.isdir(kitchen) else SAMPLE_DIR
    frames = (load_frames(source, start=HELD_OUT_7SCENES, count=args.frames,
                          step=100 // max(1, args.frames)) if source == kitchen
              else load_frames(source, count=args.frames))
    print(f'frames: {len(frames)} from {source}')
    confident = 'depth_uncertainty' in contract.outputs
    outputs = OUTPUTS + ((CONFIDENCE,) if confident else ())
    with NodeSession(model_path, ['cpu'], os.path.join(args.out, 'node.log'),
                     outputs) as session:
        latencies, panels, elapsed = record_panels(session.recorder, frames, args.out, trained,
                                                   outputs)
        time.sleep(1.5)  # one more diagnostics period
        diagnostics = dict(session.recorder.diagnostics)
    code = session.exit_code
    summary = {
        'model': model_path, 'model_origin': origin, 'trained': contract.trained,
        'frames_source': source, 'frames_sent': len(frames), 'frames_complete': len(panels),
        'round_trip_ms_p50': round(float(np.percentile(latencies, 50)), 1) if latencies else None,
        'round_trip_ms_p99': round(float(np.percentile(latencies, 99)), 1) if latencies else None,
        'throughput_hz_sequential': len(panels) / elapsed if elapsed > 0 else None,
        'node_diagnostics': diagnostics, 'node_exit_code': code, 'panels': panels}
    with open(os.path.join(args.out, 'summary.json'), 'w') as stream:
        json.dump(summary, stream, indent=2)
    lines = ['# vd_ros demo', '', f'- model: `{model_path}` ({origin}); **{trained}**',
             f'- frames: {len(panels)}/{len(frames)} complete from `{source}`',
             f'- round trip (publish -> all outputs received), one frame at a time: p50 '
             f'{summary["round_trip_ms_p50"]} ms, p99 {summary["round_trip_ms_p99"]} ms',
             f'- node time per frame p50 {diagnostics.get("latency_p50_ms")} ms, of which ORT '
             f'{diagnostics.get("model_p50_ms")} ms; provider '
             f'{diagnostics.get("active_provider")}',
             '- panels: RGB | input depth | completed depth | segmentation | feature PCA' +
             (' | confidence' if confident else ' (no confidence: the model has no '
              'depth_uncertainty output)')]
    lines += [f'  - `{os.path.basename(p)}`' for p in panels]
    with open(os.path.join(args.out, 'summary.md'), 'w') as stream:
        stream.write('\n'.join(lines) + '\n')
    print('\n'.join(lines))
    return 0 if panels and code == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
