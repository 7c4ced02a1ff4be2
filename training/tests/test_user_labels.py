"""Heads from a user's labels: class lists, labelled folders, COCO polygons, end to end.

Facts the tests check against: label ids painted by hand into PNGs, rectangles whose covered
pixels follow from their corners, COCO run lengths written out by hand, and the class names and
colours of a class-list file read back from the exported ONNX file.
"""

import json
import os

import cv2
import numpy as np
import onnx
import pytest

from training.checkpoint.files import load_checkpoint
from training.data.class_list import parse_class_list, read_class_list
from training.data.coco_masks import CocoFormatError, read_coco, rle_counts
from training.data.datasets import build_source
from training.data.label_layouts import class_file_layout
from training.export_onnx import main as export_main
from training.train_heads import (load_frames, load_heads_config, main as train_heads_main,
                                  parse_args, run)
from vd_ros.core.contract import METADATA_KEY, parse_metadata

TINY = '{depth: 2, embed_dim: 64, num_heads: 2}'
CLASSES = 'background 0 0 0\ncup 255 0 0\nplate 0 0 255\n'
CUP, PLATE = (1, 1, 5, 3), (0, 2, 9, 6)  # x0, y0, x1, y1 (inclusive pixel corners)


def rectangle(x0, y0, x1, y1):
    """Return the COCO polygon through the four corners."""
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def write_frame(folder, name, rgb, label, depth_mm=1500):
    """Write colour / depth / label PNGs of one frame into color/, depth/, label/."""
    for sub in ('color', 'depth', 'label'):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
    cv2.imwrite(os.path.join(folder, 'color', f'{name}.png'), rgb[:, :, ::-1])
    cv2.imwrite(os.path.join(folder, 'depth', f'{name}.png'),
                np.full(label.shape, depth_mm, np.uint16))
    cv2.imwrite(os.path.join(folder, 'label', f'{name}.png'), label.astype(np.uint8))


def synthetic_frame(seed, size=(48, 64)):
    """Return a grey frame, a blue 20x24 plate (label 2) and a red 12x14 cup (label 1) over it."""
    rng = np.random.default_rng(seed)
    rgb = np.full(size + (3,), 128, np.uint8)
    label = np.zeros(size, np.uint8)
    for class_id, colour, (rows, cols) in ((2, (0, 0, 255), (20, 24)),
                                           (1, (255, 0, 0), (12, 14))):
        top, left = rng.integers(0, size[0] - rows), rng.integers(0, size[1] - cols)
        rgb[top:top + rows, left:left + cols] = colour
        label[top:top + rows, left:left + cols] = class_id
    return rgb, label


LABELLED = {'type': 'labelled_folder', 'rgb_glob': 'color/*.png', 'depth_glob': 'depth/*.png',
            'label_glob': 'label/*.png', 'encoding': 'mm'}


def test_class_list_names_colours_comments_and_palette_fill():
    """Line order gives ids; a class without a colour gets the VOC palette colour of its id."""
    classes = parse_class_list('# my robot\n\nbackground 0 0 0\nred mug, 255, 0, 0\n'
                               '\tbowl\t10 20 30\nbox\n', 'c.txt')
    assert classes.names == ('background', 'red mug', 'bowl', 'box')
    # VOC colour map: id 3 = bits 011 -> (128, 128, 0)
    assert classes.colors == ((0, 0, 0), (255, 0, 0), (10, 20, 30), (128, 128, 0))
    plain = parse_class_list('background\nmug\n')
    assert plain.names == ('background', 'mug') and plain.colors is None


@pytest.mark.parametrize('text, message', [
    ('background\nmug 255 0 256\n', r'c\.txt:2: colour \[255, 0, 256\] of .mug.'),
    ('background\nmug\nmug 1 2 3\n', r"c\.txt:3: class 'mug' listed twice \(ids 1 and 2\)"),
    ('background 0 0 0\n', r'c\.txt: a class list needs background .* found 1'),
])
def test_class_list_errors_name_file_line_and_value(text, message):
    """Check: class list errors name the file, the line and the value."""
    with pytest.raises(ValueError, match=message):
        parse_class_list(text, 'c.txt')


def test_labelled_folder_reads_the_painted_ids(tmp_path):
    """Check: labelled folder reads the label ids painted into its PNGs, in name order."""
    frames = [synthetic_frame(seed) for seed in range(2)]
    for index, (rgb, label) in enumerate(frames):
        write_frame(str(tmp_path), f'{index:03d}', rgb, label)
    dataset = build_source({**LABELLED, 'root': str(tmp_path), 'class_names': ['bg', 'a', 'b']})
    assert len(dataset) == 2
    for index, (rgb, label) in enumerate(frames):
        sample = dataset[index]
        np.testing.assert_array_equal(sample['label'], label)
        np.testing.assert_array_equal(sample['rgb'], rgb)
        assert np.all(sample['depth'] == 1.5)


def test_labelled_folder_refuses_missing_partners_and_unknown_label_values(tmp_path):
    """Check: labelled folder refuses missing partners and label values outside the list."""
    rgb, label = synthetic_frame(0)
    write_frame(str(tmp_path), '000', rgb, label)
    write_frame(str(tmp_path), '001', rgb, label)
    spec = {**LABELLED, 'root': str(tmp_path)}
    plate = int((label == 2).sum())
    with pytest.raises(ValueError, match=rf'label/000\.png: label value 2 \({plate} pixels\) is '
                       r'not in the class list of 2 classes \(ids 0\.\.1: 0 bg, 1 cup\)'):
        build_source({**spec, 'class_names': ['bg', 'cup']})[0]
    os.remove(tmp_path / 'depth' / '001.png')
    with pytest.raises(ValueError, match=r'color/001\.png has no depth partner .*depth/\*\.png'):
        build_source(spec)
    write_frame(str(tmp_path), '001', rgb, label)
    os.remove(tmp_path / 'label' / '000.png')
    with pytest.raises(ValueError, match=r'color/000\.png has no label partner'):
        build_source(spec)


def test_colour_coded_label_images_map_through_the_class_colours(tmp_path):
    """Masks painted in the class colours (CVAT's mask export) read as the class ids."""
    rgb, label = synthetic_frame(3)
    write_frame(str(tmp_path), '000', rgb, label)
    colours = np.array([(0, 0, 0), (255, 0, 0), (0, 0, 255)], np.uint8)
    cv2.imwrite(str(tmp_path / 'label' / '000.png'), colours[label][:, :, ::-1])  # BGR file
    spec = {**LABELLED, 'root': str(tmp_path), 'class_names': ['bg', 'cup', 'plate']}
    sample = build_source({**spec, 'class_colors': colours.tolist()})[0]
    np.testing.assert_array_equal(sample['label'], label)
    with pytest.raises(ValueError, match=r'label/000\.png: a colour label image .* needs colours'):
        build_source(spec)[0]
    with pytest.raises(ValueError, match=r'label/000\.png: colour \[0, 0, 255\] \(\d+ pixels\) '
                       r'is not a colour of the class list'):
        build_source({**spec, 'class_colors': [[0, 0, 0], [255, 0, 0], [0, 0, 250]]})[0]


def test_user_label_sources_need_a_class_list(tmp_path):
    """Check: labelled_folder and coco sources in heads.train need heads.classes."""
    with pytest.raises(ValueError, match='labelled_folder source .* needs heads.classes'):
        load_frames([{**LABELLED, 'root': str(tmp_path)}], str(tmp_path))


def coco_file(path, annotations, categories=((3, 'cup'), (7, 'plate')), size=(8, 12),
              file_name='000.png'):
    """Write a COCO file with one image and return its path."""
    data = {'images': [{'id': 1, 'file_name': file_name, 'height': size[0],
                        'width': size[1]}],
            'categories': [{'id': i, 'name': n} for i, n in categories],
            'annotations': [{'id': k + 1, 'image_id': 1, **a} for k, a in
                            enumerate(annotations)]}
    with open(path, 'w', encoding='utf-8') as stream:
        json.dump(data, stream)
    return str(path)


def test_coco_polygons_rasterise_to_contiguous_ids_smaller_object_on_top(tmp_path):
    """Category ids 3, 7 become label ids 1, 2; the cup (smaller) stays on top of the plate."""
    path = coco_file(tmp_path / 'a.json', [
        {'category_id': 3, 'segmentation': [rectangle(*CUP)]},
        {'category_id': 7, 'segmentation': [rectangle(*PLATE)]}])
    coco = read_coco(path)
    assert coco.class_list().names == ('background', 'cup', 'plate')
    label = coco.label_image(coco.images[0], coco.label_ids())
    expected = np.zeros((8, 12), np.int64)
    expected[PLATE[1]:PLATE[3] + 1, PLATE[0]:PLATE[2] + 1] = 2  # rows 2-6, columns 0-9
    expected[CUP[1]:CUP[3] + 1, CUP[0]:CUP[2] + 1] = 1  # rows 1-3, columns 1-5
    np.testing.assert_array_equal(label, expected)
    # Mapped by name onto a user's class list: cup is id 3 there, plate id 1.
    ids = coco.label_ids(['background', 'plate', 'fork', 'cup'])
    assert ids == {3: 3, 7: 1}
    with pytest.raises(CocoFormatError, match=r"a\.json: categories \['plate'\] are not in"):
        coco.label_ids(['background', 'cup'])


def test_coco_run_length_masks_list_and_compressed():
    """COCO RLE: column-major runs from a run of zeros; the string form as pycocotools'."""
    # '2' -> 2, '3' -> 3, '1' -> 1; from the fourth run on, differences to the run two
    # before: 'O' (79 - 48 = 31 = -1 in 5 bits) -> 3 + -1 = 2.
    assert rle_counts('231O') == [2, 3, 1, 2]
    # 'a' (97 - 48 = 49 = 0x20 | 17: low bits 17, continued) '0' (0): 17 -> first run 17.
    assert rle_counts('a0') == [17]
    # '`' (96 - 48 = 48 = 0x20 | 16: low bits 16, continued) '1' (1 << 5 = 32): 48.
    assert rle_counts('`1') == [48]
    assert rle_counts([0, 4, 2]) == [0, 4, 2]


def test_coco_rle_annotation_rasterises(tmp_path):
    """A 2x3 image with runs [1, 3, 2] (column-major): pixels (1,0), (0,1), (1,1) are set."""
    path = coco_file(tmp_path / 'r.json', [
        {'category_id': 7, 'iscrowd': 1, 'segmentation': {'size': [2, 3], 'counts': [1, 3, 2]}}],
        size=(2, 3))
    coco = read_coco(path)
    label = coco.label_image(coco.images[0], coco.label_ids())
    assert label.tolist() == [[0, 2, 0], [2, 2, 0]]


@pytest.mark.parametrize('mutate, message', [
    (lambda d: d.pop('annotations'), r'bad\.json: the file lacks "annotations"'),
    (lambda d: d['annotations'][0].update(image_id=9),
     r'bad\.json: annotations\[0\] \(id 1\): image_id 9 is not in images'),
    (lambda d: d['annotations'][0].update(category_id=4),
     r'annotations\[0\] \(id 1\): category_id 4 is not in categories \[3, 7\]'),
    (lambda d: d['images'][0].update(width='12'), r'images\[0\] "width" must be int'),
    (lambda d: d['categories'].append({'id': 3, 'name': 'mug'}),
     r'categories\[2\]: category id 3 used twice'),
])
def test_malformed_coco_is_refused_naming_file_entry_and_value(tmp_path, mutate, message):
    """Check: malformed coco is refused naming the file, the entry and the value."""
    path = coco_file(tmp_path / 'bad.json', [{'category_id': 3,
                                              'segmentation': [rectangle(*CUP)]}])
    with open(path, encoding='utf-8') as stream:
        data = json.load(stream)
    mutate(data)
    with open(path, 'w', encoding='utf-8') as stream:
        json.dump(data, stream)
    with pytest.raises(CocoFormatError, match=message):
        read_coco(path)


@pytest.mark.parametrize('segmentation, message', [
    ([[1, 1, 5, 1, 5]], r'annotations\[0\] \(id 1\) of image .000\.png.: polygon .* at least 3'),
    ({'size': [8, 12], 'counts': [5, 5]}, r'RLE runs cover 10 pixels, the image has 96'),
])
def test_bad_segmentations_name_the_annotation(tmp_path, segmentation, message):
    """Check: bad segmentations name the annotation."""
    coco = read_coco(coco_file(tmp_path / 'x.json', [{'category_id': 3,
                                                      'segmentation': segmentation}]))
    with pytest.raises(CocoFormatError, match=message):
        coco.label_image(coco.images[0], coco.label_ids())


def test_not_json_is_refused(tmp_path):
    """Check: not json is refused."""
    path = tmp_path / 'broken.json'
    path.write_text('{"images": [', encoding='utf-8')
    with pytest.raises(CocoFormatError, match=r'broken\.json: not valid JSON'):
        read_coco(str(path))


def coco_folder(root):
    """Two synthetic frames and a COCO file of their cup and plate rectangles."""
    images, annotations = [], []
    for index in range(2):
        rgb, label = synthetic_frame(index)
        write_frame(str(root), f'{index:03d}', rgb, label)
        images.append({'id': 10 + index, 'file_name': f'color/{index:03d}.png',
                       'height': 48, 'width': 64})
        for category, class_id in ((5, 1), (6, 2)):
            rows, cols = np.nonzero(label == class_id)
            # Only the visible part of each rectangle counts: the cup is drawn on top.
            box = [int(v) for v in (cols.min(), rows.min(), cols.max(), rows.max())]
            annotations.append({'id': len(annotations) + 1, 'image_id': 10 + index,
                                'category_id': category, 'segmentation': [rectangle(*box)]})
    path = root / 'annotations.json'
    path.write_text(json.dumps({'images': images, 'annotations': annotations, 'categories': [
        {'id': 5, 'name': 'cup'}, {'id': 6, 'name': 'plate'}]}), encoding='utf-8')
    return str(path)


COCO = {'type': 'coco', 'annotations': 'annotations.json', 'rgb_glob': 'color/*.png',
        'depth_glob': 'depth/*.png', 'encoding': 'mm'}


def test_coco_source_pairs_images_with_colour_and_depth(tmp_path):
    """The rasterised labels equal the painted label PNGs where the cup covers the plate."""
    coco_folder(tmp_path)
    dataset = build_source({**COCO, 'root': str(tmp_path),
                            'class_names': ['background', 'cup', 'plate']})
    for index in range(2):
        _, label = synthetic_frame(index)
        expected = label.astype(np.int64)
        sample = dataset[index]
        # The plate polygon is its full rectangle; the painted PNG has the cup over it.
        assert np.all(sample['label'][expected == 1] == 1)
        assert np.all(sample['label'][expected == 0] == 0)
        assert sample['name'].endswith(f'depth/{index:03d}.png')
    os.remove(tmp_path / 'color' / '001.png')
    os.remove(tmp_path / 'depth' / '001.png')
    with pytest.raises(ValueError, match=r"image 'color/001\.png' \(id 11\) has no colour file"):
        build_source({**COCO, 'root': str(tmp_path)})
    write_frame(str(tmp_path), '001', *synthetic_frame(1))
    os.remove(tmp_path / 'depth' / '000.png')
    with pytest.raises(ValueError, match=r'color/000\.png has no depth partner'):
        build_source({**COCO, 'root': str(tmp_path)})


def onnx_contract(path):
    """Parse the vd_ros metadata of an ONNX file."""
    props = {p.key: p.value for p in onnx.load(path).metadata_props}
    return parse_metadata(props[METADATA_KEY], path)


def test_train_heads_on_a_labelled_folder_learns_the_ids_and_exports_names(tmp_path):
    """Red = cup (1), blue = plate (2): the head learns them; names and colours reach ONNX."""
    data = tmp_path / 'frames'
    for index in range(6):
        write_frame(str(data), f'{index:03d}', *synthetic_frame(index))
    classes = tmp_path / 'classes.txt'
    classes.write_text(CLASSES, encoding='utf-8')
    report = tmp_path / 'report.md'
    source = ('{type: labelled_folder, root: %s, rgb_glob: "color/*.png", depth_glob: '
              '"depth/*.png", label_glob: "label/*.png", encoding: mm, select: %s}')
    common = ['--output-dir', str(tmp_path / 'heads'), f'heads.classes={classes}',
              'heads.steps=120', 'heads.lr=0.01', 'heads.input_size=[56,70]',
              'heads.hflip=false', 'heads.kinds=[linear]', 'heads.loss_stride=2',
              f'model.timm_kwargs={TINY}']
    results = train_heads_main_results(['--report', str(report)] + common + [
        f'heads.train=[{source % (data, "[0, 4]")}]', f'heads.eval=[{source % (data, "[4, 6]")}]'])
    assert results['linear']['class_iou']['cup'] > 0.5
    assert results['linear']['class_iou']['plate'] > 0.5
    assert 'Layout class list' in report.read_text()
    info = load_checkpoint(str(tmp_path / 'heads' / 'linear.pt'))
    assert info['class_names'] == ['background', 'cup', 'plate']
    assert info['class_colors'] == [[0, 0, 0], [255, 0, 0], [0, 0, 255]]
    out = str(tmp_path / 'vd.onnx')
    assert export_main(['--heads', str(tmp_path / 'heads' / 'linear.pt'), '--output', out,
                        '--input-size', '56', '70', f'model.timm_kwargs={TINY}']) == 0
    contract = onnx_contract(out)
    assert contract.class_names == ('background', 'cup', 'plate')
    assert contract.class_colors == ((0, 0, 0), (255, 0, 0), (0, 0, 255))
    # A label outside the class list stops training, naming the label file and the value.
    label = cv2.imread(str(data / 'label' / '001.png'), cv2.IMREAD_UNCHANGED)
    label[0, 0] = 5
    cv2.imwrite(str(data / 'label' / '001.png'), label)
    with pytest.raises(ValueError, match=r'label/001\.png: label value 5 \(1 pixels\)'):
        train_heads_main_results(common + [f'heads.train=[{source % (data, "[0, 4]")}]',
                                           f'heads.eval=[{source % (data, "[4, 6]")}]'])


def train_heads_main_results(argv):
    """Run train_heads as the command line does and return its results."""
    return run(parse_args(argv))


def test_train_heads_on_a_coco_file_takes_its_categories_as_classes(tmp_path):
    """heads.classes = the COCO file: background + its categories, in the heads file."""
    annotations = coco_folder(tmp_path)
    source = (f'{{type: coco, root: {tmp_path}, annotations: annotations.json, '
              'rgb_glob: "color/*.png", depth_glob: "depth/*.png", encoding: mm}')
    assert train_heads_main([
        '--output-dir', str(tmp_path / 'heads'), f'heads.classes={annotations}',
        'heads.steps=2', 'heads.input_size=[56,70]', 'heads.hflip=false',
        'heads.kinds=[linear]', f'heads.train=[{source}]', f'heads.eval=[{source}]',
        f'model.timm_kwargs={TINY}']) == 0
    info = load_checkpoint(str(tmp_path / 'heads' / 'linear.pt'))
    assert info['class_names'] == ['background', 'cup', 'plate']
    assert info['class_colors'] == []
    assert class_file_layout(annotations).class_names == ('background', 'cup', 'plate')


def test_ycbv_example_class_list_has_the_ycbv_objects_in_order(shared_data):
    """docs/examples/ycbv_classes.txt: 22 classes in the dataset's model-folder order."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    classes = read_class_list(os.path.join(root, 'docs', 'examples', 'ycbv_classes.txt'))
    folders = sorted(os.listdir(os.path.join(shared_data, 'ycbv', 'models')))
    assert ['background'] + [f.split('_', 1)[1] for f in folders] == list(classes.names)
    assert len(set(classes.colors)) == 22


def test_ycbv_example_config_keeps_the_default_split(shared_data):
    """heads_ycbv_classes.yaml reads the same frames as heads.yaml's built-in ycbv sources."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    default = load_heads_config([], [])['heads']
    example = load_heads_config([os.path.join(root, 'training', 'configs',
                                              'heads_ycbv_classes.yaml')], [])['heads']
    for part in ('train', 'eval'):
        names = [[f.name for s in specs for f in build_source(s, base_dir=shared_data).frames]
                 for specs in (default[part], example[part])]
        assert names[0] == names[1] and names[0]
