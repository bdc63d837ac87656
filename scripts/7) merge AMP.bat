@echo off
rem 7) merge AMP: put the AMP face onto every data_dst frame: data_dst/merged and
rem data_dst/merged_mask. Interactive window on a terminal (] and [ change the morph factor); batch with
rem the default settings otherwise (--morph-factor 0..1 sets it, default 0.75).
rem Extra arguments go to main.py; set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" merge ^
    --input-dir "%WORKSPACE%\data_dst" ^
    --output-dir "%WORKSPACE%\data_dst\merged" ^
    --output-mask-dir "%WORKSPACE%\data_dst\merged_mask" ^
    --aligned-dir "%WORKSPACE%\data_dst\aligned" ^
    --model-dir "%WORKSPACE%\model" ^
    --model AMP ^
    %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
