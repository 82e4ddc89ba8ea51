//! The pairing QR code as an image, for UIs that would rather not bundle a QR library: SVG
//! (`qrcode`'s renderer) or an 8-bit greyscale PNG (`png`), black modules on white with the
//! four-module quiet zone scanners expect.

use qrcode::render::svg;
use qrcode::{Color, QrCode};

/// Pixels per module in the PNG: 8 puts a WhatsApp QR (about 57 modules with its quiet zone)
/// at some 460 px, plenty for a phone camera.
const PNG_MODULE: usize = 8;
/// The quiet zone, in modules.
const QUIET_ZONE: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum QrImageError {
    #[error("the QR payload cannot be encoded: {0}")]
    Encode(#[from] qrcode::types::QrError),
    #[error("the PNG cannot be written: {0}")]
    Png(#[from] png::EncodingError),
}

pub fn svg(payload: &str) -> Result<String, QrImageError> {
    let code = QrCode::new(payload.as_bytes())?;
    Ok(code.render::<svg::Color>().min_dimensions(256, 256).quiet_zone(true).build())
}

pub fn png(payload: &str) -> Result<Vec<u8>, QrImageError> {
    let code = QrCode::new(payload.as_bytes())?;
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET_ZONE) * PNG_MODULE;
    let mut pixels = vec![0xFFu8; side * side];
    for (index, color) in colors.iter().enumerate() {
        if *color != Color::Dark {
            continue;
        }
        let (x, y) = ((index % modules + QUIET_ZONE) * PNG_MODULE, (index / modules + QUIET_ZONE) * PNG_MODULE);
        for row in y..y + PNG_MODULE {
            pixels[row * side + x..row * side + x + PNG_MODULE].fill(0);
        }
    }
    let mut out = Vec::new();
    let side = u32::try_from(side).unwrap_or(u32::MAX);
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&pixels)?;
    writer.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn both_images_carry_the_code() {
        let payload = "2@AbCdEf==,xyz=,uvw=,ADV==";
        let svg = super::svg(payload).expect("svg");
        assert!(svg.starts_with("<?xml") && svg.contains("<svg") && svg.trim_end().ends_with("</svg>"), "{svg}");
        let png = super::png(payload).expect("png");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let reader = decoder.read_info().expect("a PNG");
        let side = (qrcode::QrCode::new(payload).expect("code").width() + 8) * 8;
        assert_eq!((reader.info().width, reader.info().height), (side as u32, side as u32));
    }
}
